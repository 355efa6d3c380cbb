//! A workspace's choices about how its reports count. Reports read the re-contact window when
//! they are asked, so a change applies to every period at once; business hours are applied as
//! conversations are counted (`ScheduleHistory`).

use super::business_hours::BusinessHours;
use super::recontact::RecontactWindow;
use super::sla::SlaTargets;

/// The report settings of a workspace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportSettings {
    pub recontact_window: RecontactWindow,
    /// The current business hours (see `ScheduleHistory` for how they are applied).
    pub business_hours: Option<BusinessHours>,
    /// The current service level targets, applied like business hours.
    pub sla_targets: Option<SlaTargets>,
}

impl Default for ReportSettings {
    fn default() -> Self {
        Self {
            recontact_window: RecontactWindow::DEFAULT,
            business_hours: None,
            sla_targets: None,
        }
    }
}
