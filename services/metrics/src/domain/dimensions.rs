//! The dimensions metrics break down by and filter on. Values are the stored names charla uses
//! everywhere (`whatsapp`, `inbound_message`...); an empty value means "none" (no assignee yet,
//! not closed yet).

/// One conversation's dimensions, as they stand now (or stood when it closed).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dimensions {
    pub assignee: String,
    pub team: String,
    pub channel_type: String,
    pub channel_id: String,
    pub opened_by: String,
    pub closed_by: String,
    pub category: String,
}

/// A dimension, for filters and group-by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dimension {
    Assignee,
    Team,
    ChannelType,
    Channel,
    OpenedBy,
    ClosedBy,
    Category,
}

impl Dimension {
    pub const ALL: [Dimension; 7] = [
        Self::Assignee,
        Self::Team,
        Self::ChannelType,
        Self::Channel,
        Self::OpenedBy,
        Self::ClosedBy,
        Self::Category,
    ];

    /// The column that holds this dimension.
    pub fn column(&self) -> &'static str {
        match self {
            Self::Assignee => "assignee",
            Self::Team => "team",
            Self::ChannelType => "channel_type",
            Self::Channel => "channel_id",
            Self::OpenedBy => "opened_by",
            Self::ClosedBy => "closed_by",
            Self::Category => "category",
        }
    }

    /// This dimension's value in `dimensions`.
    pub fn value_in<'a>(&self, dimensions: &'a Dimensions) -> &'a str {
        match self {
            Self::Assignee => &dimensions.assignee,
            Self::Team => &dimensions.team,
            Self::ChannelType => &dimensions.channel_type,
            Self::Channel => &dimensions.channel_id,
            Self::OpenedBy => &dimensions.opened_by,
            Self::ClosedBy => &dimensions.closed_by,
            Self::Category => &dimensions.category,
        }
    }
}

/// Which conversations count: for each dimension, the accepted values (none listed: any).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub accepted: Vec<(Dimension, Vec<String>)>,
}

impl Filter {
    /// Accepts only `values` of `dimension` (an empty list changes nothing).
    pub fn only(&mut self, dimension: Dimension, values: Vec<String>) {
        if !values.is_empty() {
            self.accepted.push((dimension, values));
        }
    }

    /// Whether `dimensions` pass.
    pub fn accepts(&self, dimensions: &Dimensions) -> bool {
        self.accepted
            .iter()
            .all(|(dimension, values)| values.iter().any(|v| v == dimension.value_in(dimensions)))
    }
}
