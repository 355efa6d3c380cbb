//! The `BusinessHours` message at the gRPC edge: into the domain's validated schedule, every
//! problem an INVALID_ARGUMENT naming its field path, and back for answers.

use charla_proto::charla::metrics::v1 as pb;
use charla_runtime::ApiError;
use jiff::civil::Weekday;

use crate::domain::{BusinessHours, BusinessHoursDraft, IntervalDraft};

/// The schedule in the request field named `field` (`business_hours`, say); required.
pub fn parse_business_hours(
    field: &str,
    value: Option<&pb::BusinessHours>,
) -> Result<BusinessHours, ApiError> {
    let value = value.ok_or_else(|| ApiError::invalid(field, "is required"))?;
    let draft = BusinessHoursDraft {
        time_zone: &value.time_zone,
        intervals: value
            .intervals
            .iter()
            .map(|interval| IntervalDraft {
                day: weekday(interval.day),
                start_time: &interval.start_time,
                end_time: &interval.end_time,
            })
            .collect(),
        holidays: value.holidays.iter().map(String::as_str).collect(),
    };
    BusinessHours::new(&draft)
        .map_err(|error| ApiError::invalid(format!("{field}.{}", error.path()), error.to_string()))
}

/// The proto form of a schedule: its zone as the time zone database spells it, its intervals as
/// given, its holidays in date order.
pub fn business_hours_to_proto(hours: &BusinessHours) -> pb::BusinessHours {
    pb::BusinessHours {
        time_zone: hours.time_zone().to_owned(),
        intervals: hours
            .intervals()
            .iter()
            .map(|interval| pb::BusinessInterval {
                day: day_of_week(interval.day()) as i32,
                start_time: interval.start().to_string(),
                end_time: interval.end().to_string(),
            })
            .collect(),
        holidays: hours.holidays().iter().map(ToString::to_string).collect(),
    }
}

/// `None` for DAY_OF_WEEK_UNSPECIFIED and for numbers that are no day: the domain names the
/// field.
fn weekday(value: i32) -> Option<Weekday> {
    match pb::DayOfWeek::try_from(value).ok()? {
        pb::DayOfWeek::Unspecified => None,
        pb::DayOfWeek::Monday => Some(Weekday::Monday),
        pb::DayOfWeek::Tuesday => Some(Weekday::Tuesday),
        pb::DayOfWeek::Wednesday => Some(Weekday::Wednesday),
        pb::DayOfWeek::Thursday => Some(Weekday::Thursday),
        pb::DayOfWeek::Friday => Some(Weekday::Friday),
        pb::DayOfWeek::Saturday => Some(Weekday::Saturday),
        pb::DayOfWeek::Sunday => Some(Weekday::Sunday),
    }
}

fn day_of_week(day: Weekday) -> pb::DayOfWeek {
    match day {
        Weekday::Monday => pb::DayOfWeek::Monday,
        Weekday::Tuesday => pb::DayOfWeek::Tuesday,
        Weekday::Wednesday => pb::DayOfWeek::Wednesday,
        Weekday::Thursday => pb::DayOfWeek::Thursday,
        Weekday::Friday => pb::DayOfWeek::Friday,
        Weekday::Saturday => pb::DayOfWeek::Saturday,
        Weekday::Sunday => pb::DayOfWeek::Sunday,
    }
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    fn interval(day: pb::DayOfWeek, start: &str, end: &str) -> pb::BusinessInterval {
        pb::BusinessInterval {
            day: day as i32,
            start_time: start.to_owned(),
            end_time: end.to_owned(),
        }
    }

    fn valid() -> pb::BusinessHours {
        pb::BusinessHours {
            time_zone: "America/New_York".to_owned(),
            intervals: vec![
                interval(pb::DayOfWeek::Monday, "09:00", "17:00"),
                interval(pb::DayOfWeek::Friday, "22:00", "06:00"),
                interval(pb::DayOfWeek::Sunday, "20:00", "24:00"),
            ],
            holidays: vec!["2026-12-25".to_owned(), "2026-07-03".to_owned()],
        }
    }

    /// A change to a valid message.
    type Edit = Box<dyn FnOnce(&mut pb::BusinessHours)>;

    /// The field and description of the error `edit` makes of a valid schedule.
    fn refused(edit: impl FnOnce(&mut pb::BusinessHours)) -> (String, String) {
        let mut message = valid();
        edit(&mut message);
        let error = parse_business_hours("business_hours", Some(&message)).unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        match error {
            ApiError::InvalidArgument { field, description } => (field, description),
            other => panic!("not INVALID_ARGUMENT: {other:?}"),
        }
    }

    #[test]
    fn a_valid_schedule_reads_back_as_given_with_holidays_in_order() {
        let hours = parse_business_hours("business_hours", Some(&valid())).unwrap();
        // Friday 22:00 to Saturday 06:00, Monday 09:00-17:00, Sunday 20:00-24:00.
        assert_eq!(hours.weekly_time().as_secs(), (8 + 8 + 4) * 3600);
        let back = business_hours_to_proto(&hours);
        let mut expected = valid();
        expected.holidays.sort();
        assert_eq!(back, expected);
        assert_eq!(
            parse_business_hours("business_hours", Some(&back)).unwrap(),
            hours
        );
    }

    #[test]
    fn a_missing_schedule_names_the_field() {
        let error = parse_business_hours("settings.business_hours", None).unwrap_err();
        assert_eq!(
            error,
            ApiError::invalid("settings.business_hours", "is required")
        );
    }

    #[test]
    fn each_problem_names_its_field_path() {
        let cases: Vec<(Edit, &str)> = vec![
            (
                Box::new(|m| m.time_zone = "Mars/Olympus".into()),
                "business_hours.time_zone",
            ),
            (
                Box::new(|m| m.time_zone.clear()),
                "business_hours.time_zone",
            ),
            (
                Box::new(|m| m.intervals.clear()),
                "business_hours.intervals",
            ),
            (
                Box::new(|m| m.intervals[1].day = pb::DayOfWeek::Unspecified as i32),
                "business_hours.intervals[1].day",
            ),
            (
                Box::new(|m| m.intervals[2].day = 8),
                "business_hours.intervals[2].day",
            ),
            (
                Box::new(|m| m.intervals[0].start_time = "24:00".into()),
                "business_hours.intervals[0].start_time",
            ),
            (
                Box::new(|m| m.intervals[2].end_time = "24:30".into()),
                "business_hours.intervals[2].end_time",
            ),
            (
                Box::new(|m| m.intervals[0].end_time = "09:00".into()),
                "business_hours.intervals[0].end_time",
            ),
            (
                // Sunday 20:00 to Monday 09:30 runs into Monday's 09:00.
                Box::new(|m| m.intervals[2].end_time = "09:30".into()),
                "business_hours.intervals[2]",
            ),
            (
                Box::new(|m| m.holidays[1] = "2026-13-01".into()),
                "business_hours.holidays[1]",
            ),
            (
                Box::new(|m| m.holidays[0] = "1969-07-20".into()),
                "business_hours.holidays[0]",
            ),
            (
                Box::new(|m| m.holidays.push("2026-12-25".into())),
                "business_hours.holidays[2]",
            ),
        ];
        for (edit, field) in cases {
            let (named, description) = refused(edit);
            assert_eq!(named, field, "{description}");
            assert!(!description.is_empty());
        }
        let (_, overlap) = refused(|m| m.intervals[2].end_time = "09:30".into());
        assert_eq!(overlap, "overlaps intervals[0] on Monday at 09:00");
    }
}
