//! A workspace's choices about how its reports count. Reports read them when they are asked, so
//! a change applies to every period at once and the aggregates never depend on them.

use super::recontact::RecontactWindow;

/// The report settings of a workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportSettings {
    pub recontact_window: RecontactWindow,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            recontact_window: RecontactWindow::DEFAULT,
        }
    }
}
