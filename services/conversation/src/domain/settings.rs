//! A workspace's conversation settings: closing notes and auto-close.

use std::time::{Duration, SystemTime};

use super::error::ConversationError;
use super::sources::{CloseSource, named};

/// What a manual close must say about how the conversation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClosingNotePolicy {
    /// No closing notes: whatever a close sends is dropped.
    Disabled,
    /// A category and a summary may be given.
    Optional,
    /// A category is required.
    CategoryRequired,
    /// A category and a summary are required.
    CategoryAndSummaryRequired,
}

named!(ClosingNotePolicy {
    Disabled => "disabled",
    Optional => "optional",
    CategoryRequired => "category_required",
    CategoryAndSummaryRequired => "category_and_summary_required",
});

/// The note a close leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClosingNote {
    /// One of the workspace's closing categories, if any.
    pub category: Option<String>,
    /// Free text, if any.
    pub summary: Option<String>,
}

/// How long after the last human reply an open conversation closes by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AutoClose(Duration);

impl AutoClose {
    /// The shortest allowed delay.
    pub const MIN: Duration = Duration::from_secs(30 * 60);
    /// The longest allowed delay.
    pub const MAX: Duration = Duration::from_secs(14 * 24 * 60 * 60);

    /// A delay between 30 minutes and 14 days.
    pub fn new(after: Duration) -> Result<Self, String> {
        if !(Self::MIN..=Self::MAX).contains(&after) {
            return Err("must be 0 (off) or between 30 minutes and 14 days".into());
        }
        Ok(Self(after))
    }

    /// The delay.
    pub fn after(&self) -> Duration {
        self.0
    }

    /// The deadline for a human reply at `at`: `after` later, but never past the last instant a
    /// timestamp can hold (9999-12-31T23:59:59Z), which a test clock may be moved close to.
    pub fn deadline_from(&self, at: SystemTime) -> SystemTime {
        charla_runtime::clock::add_bounded(at, self.0)
    }
}

/// A workspace's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkspaceSettings {
    pub closing_note_policy: ClosingNotePolicy,
    /// The categories a closing note may name, in display order.
    pub closing_categories: Vec<String>,
    /// Off when `None`.
    pub auto_close: Option<AutoClose>,
}

impl Default for WorkspaceSettings {
    /// Closing notes optional, no categories, auto-close off.
    fn default() -> Self {
        Self {
            closing_note_policy: ClosingNotePolicy::Optional,
            closing_categories: Vec::new(),
            auto_close: None,
        }
    }
}

/// The most closing categories a workspace may have.
pub const MAX_CATEGORIES: usize = 100;
/// The longest category name, in characters.
pub const MAX_CATEGORY_CHARS: usize = 64;

impl WorkspaceSettings {
    /// Checks the settings as a whole: categories unique and bounded, and a policy that requires
    /// a category has some to choose from.
    pub fn validate(&self) -> Result<(), ConversationError> {
        let invalid = |description: &str| ConversationError::InvalidSettings {
            field: "settings.closing_categories",
            description: description.to_owned(),
        };
        if self.closing_categories.len() > MAX_CATEGORIES {
            return Err(invalid("must have at most 100 categories"));
        }
        for (index, category) in self.closing_categories.iter().enumerate() {
            if category.trim().is_empty() || category.chars().count() > MAX_CATEGORY_CHARS {
                return Err(invalid("each category must be 1 to 64 characters"));
            }
            if self.closing_categories[..index].contains(category) {
                return Err(invalid(&format!("`{category}` is listed twice")));
            }
        }
        let requires_category = matches!(
            self.closing_note_policy,
            ClosingNotePolicy::CategoryRequired | ClosingNotePolicy::CategoryAndSummaryRequired
        );
        if requires_category && self.closing_categories.is_empty() {
            return Err(invalid(
                "must not be empty while the policy requires a category",
            ));
        }
        Ok(())
    }

    /// The note a close by `source` keeps, or why the close is refused. Automatic closes are
    /// exempt and keep no note; a disabled policy drops whatever was sent.
    pub fn check_closing_note(
        &self,
        source: CloseSource,
        note: ClosingNote,
    ) -> Result<ClosingNote, ConversationError> {
        if source.is_automatic() || self.closing_note_policy == ClosingNotePolicy::Disabled {
            return Ok(ClosingNote::default());
        }
        if let Some(category) = &note.category
            && !self.closing_categories.contains(category)
        {
            return Err(ConversationError::UnknownCategory {
                category: category.clone(),
                known: self.closing_categories.clone(),
            });
        }
        let category_required = matches!(
            self.closing_note_policy,
            ClosingNotePolicy::CategoryRequired | ClosingNotePolicy::CategoryAndSummaryRequired
        );
        if category_required && note.category.is_none() {
            return Err(ConversationError::ClosingNoteRequired { field: "category" });
        }
        if self.closing_note_policy == ClosingNotePolicy::CategoryAndSummaryRequired
            && note.summary.is_none()
        {
            return Err(ConversationError::ClosingNoteRequired { field: "summary" });
        }
        Ok(note)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(policy: ClosingNotePolicy) -> WorkspaceSettings {
        WorkspaceSettings {
            closing_note_policy: policy,
            closing_categories: vec!["Resolved".into(), "Spam".into()],
            auto_close: None,
        }
    }

    fn note(category: Option<&str>, summary: Option<&str>) -> ClosingNote {
        ClosingNote {
            category: category.map(str::to_owned),
            summary: summary.map(str::to_owned),
        }
    }

    #[test]
    fn each_policy_asks_for_what_it_names() {
        use ClosingNotePolicy::*;
        let user = CloseSource::User;
        assert!(
            settings(Optional)
                .check_closing_note(user, note(None, None))
                .is_ok()
        );
        assert_eq!(
            settings(CategoryRequired).check_closing_note(user, note(None, Some("x"))),
            Err(ConversationError::ClosingNoteRequired { field: "category" })
        );
        assert!(
            settings(CategoryRequired)
                .check_closing_note(user, note(Some("Spam"), None))
                .is_ok()
        );
        assert_eq!(
            settings(CategoryAndSummaryRequired).check_closing_note(user, note(Some("Spam"), None)),
            Err(ConversationError::ClosingNoteRequired { field: "summary" })
        );
        assert!(matches!(
            settings(Optional).check_closing_note(user, note(Some("Nope"), None)),
            Err(ConversationError::UnknownCategory { .. })
        ));
        assert_eq!(
            settings(Disabled).check_closing_note(user, note(Some("Nope"), Some("x"))),
            Ok(ClosingNote::default())
        );
    }

    #[test]
    fn automatic_closes_are_exempt() {
        let strict = settings(ClosingNotePolicy::CategoryAndSummaryRequired);
        for source in [CloseSource::AutoClose, CloseSource::ContactMerge] {
            assert_eq!(
                strict.check_closing_note(source, note(None, None)),
                Ok(ClosingNote::default())
            );
        }
    }

    #[test]
    fn auto_close_is_bounded() {
        assert!(AutoClose::new(Duration::from_secs(29 * 60)).is_err());
        assert!(AutoClose::new(Duration::from_secs(30 * 60)).is_ok());
        assert!(AutoClose::new(Duration::from_secs(14 * 24 * 3600)).is_ok());
        assert!(AutoClose::new(Duration::from_secs(14 * 24 * 3600 + 1)).is_err());
    }

    #[test]
    fn deadlines_stop_at_the_last_timestamp() {
        let after = AutoClose::new(Duration::from_secs(3600)).unwrap();
        let end = charla_runtime::clock::latest_time();
        let late = end - Duration::from_secs(60);
        assert_eq!(after.deadline_from(late), end);
        let early = end - Duration::from_secs(7200);
        assert_eq!(
            after.deadline_from(early),
            early + Duration::from_secs(3600)
        );
    }

    #[test]
    fn a_required_category_needs_categories() {
        let mut bad = settings(ClosingNotePolicy::CategoryRequired);
        bad.closing_categories.clear();
        assert!(bad.validate().is_err());
        let mut twice = settings(ClosingNotePolicy::Optional);
        twice.closing_categories.push("Spam".into());
        assert!(twice.validate().is_err());
    }
}
