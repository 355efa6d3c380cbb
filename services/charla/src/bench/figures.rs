//! The bench's results: figures, each beside the floor it is measured against in the same run, and
//! how they are printed (a table for people, JSON for tools and the smoke test).

use std::time::Duration;

use serde_json::{Value, json};

/// One measured number.
#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    /// What was measured, in words.
    pub what: String,
    pub value: f64,
    /// `/s`, `ms`, `MiB`, `rows`...
    pub unit: &'static str,
}

impl Measure {
    pub fn new(what: impl Into<String>, value: f64, unit: &'static str) -> Self {
        Self {
            what: what.into(),
            value,
            unit,
        }
    }
}

/// A figure of charla, with the floor it is compared to when there is one (RSS has none).
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub charla: Measure,
    pub floor: Option<Measure>,
}

impl Figure {
    pub fn against(charla: Measure, floor: Measure) -> Self {
        Self {
            charla,
            floor: Some(floor),
        }
    }

    pub fn alone(charla: Measure) -> Self {
        Self {
            charla,
            floor: None,
        }
    }

    /// charla against its floor, as "how much of the floor": above 1 is better for rates, worse
    /// for latencies. None without a floor.
    fn ratio(&self) -> Option<f64> {
        let floor = self.floor.as_ref()?;
        (floor.value > 0.0).then(|| self.charla.value / floor.value)
    }
}

/// The figures of one section of the bench.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    /// A short key (`ingest`, `event_lag`...): the JSON's.
    pub key: &'static str,
    pub title: &'static str,
    pub figures: Vec<Figure>,
    /// What a reader must know to read the figures (which floor, what was left out).
    pub notes: Vec<String>,
}

impl Section {
    pub fn new(key: &'static str, title: &'static str) -> Self {
        Self {
            key,
            title,
            figures: Vec::new(),
            notes: Vec::new(),
        }
    }
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct Report {
    pub backend: &'static str,
    pub rounds: u32,
    pub cpus: usize,
    pub sections: Vec<Section>,
}

impl Report {
    /// The report as JSON: `{backend, rounds, cpus, sections: {key: {title, notes, figures:
    /// [{what, value, unit, floor: {what, value, unit} | null, ratio}]}}}`.
    pub fn to_json(&self) -> Value {
        let measure = |m: &Measure| json!({"what": m.what, "value": m.value, "unit": m.unit});
        let sections: serde_json::Map<String, Value> = self
            .sections
            .iter()
            .map(|section| {
                let figures: Vec<Value> = section
                    .figures
                    .iter()
                    .map(|f| {
                        json!({
                            "what": f.charla.what,
                            "value": f.charla.value,
                            "unit": f.charla.unit,
                            "floor": f.floor.as_ref().map(measure),
                            "ratio": f.ratio(),
                        })
                    })
                    .collect();
                let body = json!({
                    "title": section.title,
                    "notes": section.notes,
                    "figures": figures,
                });
                (section.key.to_owned(), body)
            })
            .collect();
        json!({
            "backend": self.backend,
            "rounds": self.rounds,
            "cpus": self.cpus,
            "sections": sections,
        })
    }

    /// The report as a table for a person.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "charla bench: {} backend, {} cpus, medians of {} rounds\n",
            self.backend, self.cpus, self.rounds
        );
        for section in &self.sections {
            out += &section_table(section);
        }
        out
    }
}

fn number(value: f64, unit: &str) -> String {
    let digits = if value >= 100.0 {
        0
    } else if value >= 1.0 {
        1
    } else {
        3
    };
    format!("{value:.digits$} {unit}")
}

fn section_table(section: &Section) -> String {
    let mut rows: Vec<[String; 4]> = vec![[
        "charla".into(),
        "value".into(),
        "floor (same run)".into(),
        "ratio".into(),
    ]];
    for figure in &section.figures {
        let (floor, ratio) = match &figure.floor {
            Some(floor) => (
                format!("{}: {}", floor.what, number(floor.value, floor.unit)),
                figure.ratio().map_or("-".into(), |r| {
                    let digits = if r < 0.1 { 3 } else { 2 };
                    format!("{r:.digits$}×")
                }),
            ),
            None => ("-".into(), "-".into()),
        };
        rows.push([
            figure.charla.what.clone(),
            number(figure.charla.value, figure.charla.unit),
            floor,
            ratio,
        ]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("\n## {}\n", section.title);
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out += &format!("  {}\n", cells.join("  ").trim_end());
    }
    for note in &section.notes {
        out += &format!("  note: {note}\n");
    }
    out
}

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    quantile(values, 0.5)
}

/// The `q` quantile of `values` by the nearest rank (0 when empty).
pub fn quantile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Milliseconds in `duration`.
pub fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_take_the_nearest_rank() {
        let values: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(median(&values), 50.0);
        assert_eq!(quantile(&values, 0.99), 99.0);
        assert_eq!(quantile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn json_carries_every_section_with_its_floor_and_ratio() {
        let mut section = Section::new("ingest", "Ingest");
        section.figures.push(Figure::against(
            Measure::new("a", 50.0, "/s"),
            Measure::new("b", 100.0, "/s"),
        ));
        section
            .figures
            .push(Figure::alone(Measure::new("rss", 12.0, "MiB")));
        let report = Report {
            backend: "sqlite",
            rounds: 3,
            cpus: 2,
            sections: vec![section],
        };
        let json = report.to_json();
        let figures = &json["sections"]["ingest"]["figures"];
        assert_eq!(figures[0]["ratio"], 0.5);
        assert_eq!(figures[0]["floor"]["value"], 100.0);
        assert!(figures[1]["floor"].is_null());
        assert!(report.to_table().contains("0.50×"));
    }
}
