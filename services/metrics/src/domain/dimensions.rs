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
    /// The bot, AI agent or workflow that made a closed conversation automated (`Automation`).
    pub automated_by: String,
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
    AutomatedBy,
}

impl Dimension {
    pub const ALL: [Dimension; 8] = [
        Self::Assignee,
        Self::Team,
        Self::ChannelType,
        Self::Channel,
        Self::OpenedBy,
        Self::ClosedBy,
        Self::Category,
        Self::AutomatedBy,
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
            Self::AutomatedBy => "automated_by",
        }
    }

    /// The dimension stored under `column` (`None` for '', every conversation, or a name this
    /// version doesn't know).
    pub fn from_column(column: &str) -> Option<Dimension> {
        Self::ALL.into_iter().find(|d| d.column() == column)
    }

    /// This dimension's value in `dimensions`; `None` for the closing source, category and
    /// automation of a conversation still open, which has neither (not even "none": a filter on them never
    /// matches it, and it is in no group of theirs).
    pub fn value_in<'a>(&self, dimensions: &'a Dimensions) -> Option<&'a str> {
        let closed = !dimensions.closed_by.is_empty();
        match self {
            Self::Assignee => Some(&dimensions.assignee),
            Self::Team => Some(&dimensions.team),
            Self::ChannelType => Some(&dimensions.channel_type),
            Self::Channel => Some(&dimensions.channel_id),
            Self::OpenedBy => Some(&dimensions.opened_by),
            Self::ClosedBy => closed.then_some(dimensions.closed_by.as_str()),
            Self::Category => closed.then_some(dimensions.category.as_str()),
            Self::AutomatedBy => closed.then_some(dimensions.automated_by.as_str()),
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

    /// Whether a conversation with `value` of `dimension` passes, when the filter is on that
    /// dimension alone.
    pub fn accepts_value(&self, dimension: Dimension, value: &str) -> bool {
        self.accepted
            .iter()
            .all(|(d, values)| *d == dimension && values.iter().any(|v| v == value))
    }

    /// Whether `dimensions` pass.
    pub fn accepts(&self, dimensions: &Dimensions) -> bool {
        self.accepted.iter().all(|(dimension, values)| {
            dimension
                .value_in(dimensions)
                .is_some_and(|value| values.iter().any(|v| v == value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(closed_by: &str, category: &str) -> Dimensions {
        Dimensions {
            closed_by: closed_by.into(),
            category: category.into(),
            ..Dimensions::default()
        }
    }

    #[test]
    fn no_category_matches_closes_without_one_never_open_conversations() {
        let mut filter = Filter::default();
        filter.only(Dimension::Category, vec![String::new()]);
        assert!(filter.accepts(&conversation("CLOSE_SOURCE_USER", "")));
        assert!(!filter.accepts(&conversation("CLOSE_SOURCE_USER", "sale")));
        assert!(!filter.accepts(&conversation("", "")), "still open");
        assert_eq!(Dimension::ClosedBy.value_in(&conversation("", "")), None);
        assert_eq!(
            Dimension::Assignee.value_in(&conversation("", "")),
            Some("")
        );
    }
}
