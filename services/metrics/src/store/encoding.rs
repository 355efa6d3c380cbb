//! The stored form of closed-conversation statistics: a small protobuf message of their own
//! (prost's derive), holding exact counts and sums and each distribution's sketch bytes.

use charla_runtime::ApiError;
use prost::Message;

use crate::domain::{Bands, ClosedStats, ContactSketch, Distribution, RecontactGaps, SlaCounts};

#[derive(Clone, PartialEq, prost::Message)]
struct StoredDistribution {
    #[prost(uint64, tag = "1")]
    count: u64,
    #[prost(int64, tag = "2")]
    sum: i64,
    #[prost(int64, tag = "3")]
    min: i64,
    #[prost(int64, tag = "4")]
    max: i64,
    #[prost(bytes = "vec", tag = "5")]
    sketch: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
struct StoredClosedStats {
    #[prost(uint64, tag = "1")]
    closed: u64,
    #[prost(message, repeated, tag = "2")]
    distributions: Vec<StoredDistribution>,
    #[prost(uint64, repeated, tag = "3")]
    bands: Vec<u64>,
    /// The contacts' sketch (`ContactSketch::to_bytes`).
    #[prost(bytes = "vec", tag = "4")]
    contacts: Vec<u8>,
    #[prost(uint64, tag = "5")]
    automated: u64,
    #[prost(uint64, tag = "6")]
    contained: u64,
    #[prost(uint64, tag = "7")]
    handed_off: u64,
    /// Apart from `distributions`: most rows have no handoff, and an absent one costs nothing.
    #[prost(message, optional, tag = "8")]
    time_to_handoff: Option<StoredDistribution>,
    // Tag 9 is not used: re-contacts are counted in rows of their own (`recontact_*_rollup`),
    // added to without reading these statistics back.
    /// Business-time distributions, each absent while empty (workspaces without business hours).
    #[prost(message, optional, tag = "10")]
    business_resolution: Option<StoredDistribution>,
    #[prost(message, optional, tag = "11")]
    business_first_response: Option<StoredDistribution>,
    #[prost(message, optional, tag = "12")]
    business_time_to_first_assignment: Option<StoredDistribution>,
    #[prost(uint64, tag = "13")]
    sla_first_response_achieved: u64,
    #[prost(uint64, tag = "14")]
    sla_first_response_breached: u64,
    #[prost(uint64, tag = "15")]
    sla_resolution_achieved: u64,
    #[prost(uint64, tag = "16")]
    sla_resolution_breached: u64,
    #[prost(message, optional, tag = "17")]
    business_response: Option<StoredDistribution>,
}

/// A distribution that may be absent: stored only when it holds values.
fn store_optional(distribution: &Distribution) -> Option<StoredDistribution> {
    (distribution.count() > 0).then(|| store(distribution))
}

fn load_optional(stored: Option<&StoredDistribution>) -> Result<Distribution, ApiError> {
    stored.map_or_else(|| Ok(Distribution::default()), load)
}

fn store(distribution: &Distribution) -> StoredDistribution {
    let (count, sum, min, max, sketch) = distribution.to_parts();
    StoredDistribution {
        count,
        sum,
        min,
        max,
        sketch,
    }
}

fn load(stored: &StoredDistribution) -> Result<Distribution, ApiError> {
    Distribution::from_parts(
        stored.count,
        stored.sum,
        stored.min,
        stored.max,
        &stored.sketch,
    )
    .ok_or_else(|| ApiError::Internal("stored sketch is unreadable".into()))
}

/// Re-contacted conversations by hour bin (`RecontactGaps`), stored beside the statistics: a
/// protobuf `map<uint32, int64>` on the wire (a map is a repeated message of key 1 and value 2),
/// read into a list rather than a map.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredGaps {
    #[prost(message, repeated, tag = "1")]
    counts: Vec<StoredBin>,
}

/// One entry of the stored map: a bin and its count.
#[derive(Clone, PartialEq, prost::Message)]
struct StoredBin {
    #[prost(uint32, tag = "1")]
    bin: u32,
    #[prost(int64, tag = "2")]
    count: i64,
}

/// The stored bytes of re-contact counts.
pub fn encode_gaps(gaps: &RecontactGaps) -> Vec<u8> {
    StoredGaps {
        counts: gaps
            .counts()
            .iter()
            .map(|&(bin, count)| StoredBin { bin, count })
            .collect(),
    }
    .encode_to_vec()
}

/// Re-contact counts from their stored bytes.
pub fn decode_gaps(bytes: &[u8]) -> Result<RecontactGaps, ApiError> {
    let stored = StoredGaps::decode(bytes)
        .map_err(|_| ApiError::Internal("stored re-contact counts are unreadable".into()))?;
    Ok(RecontactGaps::from_counts(
        stored
            .counts
            .into_iter()
            .map(|entry| (entry.bin, entry.count)),
    ))
}

/// The stored bytes of `stats`.
pub fn encode(stats: &ClosedStats) -> Vec<u8> {
    StoredClosedStats {
        closed: stats.closed,
        distributions: [
            &stats.resolution,
            &stats.first_response,
            &stats.response,
            &stats.responses_per_conversation,
            &stats.time_to_first_assignment,
            &stats.assignments_per_conversation,
        ]
        .into_iter()
        .map(store)
        .collect(),
        bands: stats.bands.to_array().to_vec(),
        contacts: stats.contacts.to_bytes(),
        automated: stats.automated,
        contained: stats.contained,
        handed_off: stats.handed_off,
        time_to_handoff: store_optional(&stats.time_to_handoff),
        business_resolution: store_optional(&stats.business_resolution),
        business_first_response: store_optional(&stats.business_first_response),
        business_time_to_first_assignment: store_optional(&stats.business_time_to_first_assignment),
        sla_first_response_achieved: stats.sla.first_response_achieved,
        sla_first_response_breached: stats.sla.first_response_breached,
        sla_resolution_achieved: stats.sla.resolution_achieved,
        sla_resolution_breached: stats.sla.resolution_breached,
        business_response: store_optional(&stats.business_response),
    }
    .encode_to_vec()
}

/// Statistics from their stored bytes.
pub fn decode(bytes: &[u8]) -> Result<ClosedStats, ApiError> {
    let corrupt = || ApiError::Internal("stored statistics are unreadable".into());
    let stored = StoredClosedStats::decode(bytes).map_err(|_| corrupt())?;
    let [
        resolution,
        first,
        response,
        responses,
        assignment,
        assignments,
    ] = <[StoredDistribution; 6]>::try_from(stored.distributions).map_err(|_| corrupt())?;
    let bands = <[u64; 8]>::try_from(stored.bands).map_err(|_| corrupt())?;
    Ok(ClosedStats {
        closed: stored.closed,
        resolution: load(&resolution)?,
        first_response: load(&first)?,
        response: load(&response)?,
        responses_per_conversation: load(&responses)?,
        time_to_first_assignment: load(&assignment)?,
        assignments_per_conversation: load(&assignments)?,
        bands: Bands::from_array(bands),
        contacts: ContactSketch::from_bytes(&stored.contacts).ok_or_else(corrupt)?,
        automated: stored.automated,
        contained: stored.contained,
        handed_off: stored.handed_off,
        time_to_handoff: load_optional(stored.time_to_handoff.as_ref())?,
        recontact: RecontactGaps::default(),
        business_resolution: load_optional(stored.business_resolution.as_ref())?,
        business_first_response: load_optional(stored.business_first_response.as_ref())?,
        business_time_to_first_assignment: load_optional(
            stored.business_time_to_first_assignment.as_ref(),
        )?,
        business_response: load_optional(stored.business_response.as_ref())?,
        sla: SlaCounts {
            first_response_achieved: stored.sla_first_response_achieved,
            first_response_breached: stored.sla_first_response_breached,
            resolution_achieved: stored.sla_resolution_achieved,
            resolution_breached: stored.sla_resolution_breached,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// How re-contact counts were stored before they were read into a list.
    #[derive(Clone, PartialEq, prost::Message)]
    struct MapGaps {
        #[prost(btree_map = "uint32, int64", tag = "1")]
        counts: std::collections::BTreeMap<u32, i64>,
    }

    #[test]
    fn re_contact_counts_keep_the_stored_map_format() {
        let stored = MapGaps {
            counts: [(3, 2), (1, 5), (168, -1)].into_iter().collect(),
        }
        .encode_to_vec();
        let gaps = decode_gaps(&stored).unwrap();
        assert_eq!(gaps.counts(), [(1, 5), (3, 2), (168, -1)]);
        assert_eq!(encode_gaps(&gaps), stored, "written as the map was");
        assert!(decode_gaps(b"\xff").is_err());
    }
}
