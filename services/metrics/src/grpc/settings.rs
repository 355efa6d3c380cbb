//! Report settings at the gRPC edge: the proto form, and an update by field mask.

use charla_proto::charla::metrics::v1 as pb;
use charla_runtime::ApiError;
use charla_runtime::validate::quote;

use super::business_hours::{business_hours_to_proto, parse_business_hours};
use std::time::Duration;

use crate::domain::{RecontactWindow, ReportSettings, SlaTargets, target};

/// The proto form of `settings`.
pub fn settings_to_proto(settings: &ReportSettings) -> pb::ReportSettings {
    pb::ReportSettings {
        recontact_window: Some(window_to_proto(settings.recontact_window)),
        business_hours: settings
            .business_hours
            .as_ref()
            .map(business_hours_to_proto),
        sla_targets: settings.sla_targets.as_ref().map(sla_targets_to_proto),
    }
}

/// The proto form of service level targets.
pub fn sla_targets_to_proto(targets: &SlaTargets) -> pb::SlaTargets {
    let duration = |d: Duration| prost_types::Duration::try_from(d).unwrap_or_default();
    pb::SlaTargets {
        first_response: targets.first_response.map(duration),
        resolution: targets.resolution.map(duration),
        business_time: targets.business_time,
    }
}

/// Service level targets from the request field named `field` (`settings.sla_targets`).
pub fn parse_sla_targets(field: &str, value: &pb::SlaTargets) -> Result<SlaTargets, ApiError> {
    let one = |name: &str, value: Option<&prost_types::Duration>| {
        let name = format!("{field}.{name}");
        value
            .map(|value| {
                let duration = charla_runtime::clock::parse_duration(&name, value)?;
                target(duration).map_err(|e| ApiError::invalid(&name, e.to_string()))
            })
            .transpose()
    };
    Ok(SlaTargets {
        first_response: one("first_response", value.first_response.as_ref())?,
        resolution: one("resolution", value.resolution.as_ref())?,
        business_time: value.business_time,
    })
}

/// The proto form of a re-contact window.
pub fn window_to_proto(window: RecontactWindow) -> prost_types::Duration {
    prost_types::Duration::try_from(window.duration()).unwrap_or_default()
}

/// A re-contact window field: whole hours, 1 hour to 7 days.
pub fn parse_window(
    field: &str,
    value: &prost_types::Duration,
) -> Result<RecontactWindow, ApiError> {
    let duration = charla_runtime::clock::parse_duration(field, value)?;
    RecontactWindow::new(duration).map_err(|e| ApiError::invalid(field, e.to_string()))
}

/// `current` with the fields `mask` names taken from `update`.
pub fn apply_update(
    current: &ReportSettings,
    update: Option<&pb::ReportSettings>,
    mask: Option<&prost_types::FieldMask>,
) -> Result<ReportSettings, ApiError> {
    let update = update.ok_or_else(|| ApiError::invalid("settings", "is required"))?;
    let mask = mask.ok_or_else(|| ApiError::invalid("update_mask", "is required"))?;
    if mask.paths.is_empty() {
        return Err(ApiError::invalid(
            "update_mask",
            "must name at least one field",
        ));
    }
    let mut next = current.clone();
    for path in &mask.paths {
        match path.as_str() {
            "recontact_window" => {
                let field = "settings.recontact_window";
                let window = update
                    .recontact_window
                    .as_ref()
                    .ok_or_else(|| ApiError::invalid(field, "is required"))?;
                next.recontact_window = parse_window(field, window)?;
            }
            "sla_targets" => {
                next.sla_targets = update
                    .sla_targets
                    .as_ref()
                    .map(|targets| parse_sla_targets("settings.sla_targets", targets))
                    .transpose()?;
            }
            "business_hours" => {
                next.business_hours = update
                    .business_hours
                    .as_ref()
                    .map(|hours| parse_business_hours("settings.business_hours", Some(hours)))
                    .transpose()?;
            }
            other => {
                return Err(ApiError::invalid(
                    "update_mask",
                    format!(
                        "{} can't be updated; updatable fields: recontact_window, business_hours, \
                         sla_targets",
                        quote(other)
                    ),
                ));
            }
        }
    }
    Ok(next)
}
