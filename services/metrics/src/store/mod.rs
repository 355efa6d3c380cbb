//! The metrics store: applying conversation events to the aggregates (each event once, with the
//! consumer's cursor), and reading aggregates back for reports.

mod apply;
mod encoding;
mod positions;
mod queries;
mod settings;
mod statement;

use charla_runtime::consumer::ConsumerCursor;
use charla_runtime::db::{Database, MigrationFile, Migrations};
use charla_runtime::planner_statistics::PlannerStatistics;
use charla_runtime::test_clock;

pub use apply::StreamEvent;
pub use queries::{ClosedFact, LiveCounts, ReportRows};

/// The migrations of the metrics database.
pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        MigrationFile {
            version: 2,
            description: "metrics",
            sql: include_str!("../../migrations/0002_metrics.sqlite.sql"),
        },
        WORKSPACE_POSITIONS_MIGRATION,
        test_clock::fleet::MIGRATION,
        MigrationFile {
            version: 4,
            description: "dimension rollup",
            sql: include_str!("../../migrations/0004_dimension_rollup.sqlite.sql"),
        },
        SIX_HOUR_ROLLUP_MIGRATION,
        MigrationFile {
            version: 6,
            description: "automation",
            sql: include_str!("../../migrations/0006_automation.sqlite.sql"),
        },
        MigrationFile {
            version: 7,
            description: "report settings",
            sql: include_str!("../../migrations/0007_report_settings.sqlite.sql"),
        },
        MULTI_DAY_ROLLUP_MIGRATION,
    ],
    postgres: &[
        MigrationFile {
            version: 2,
            description: "metrics",
            sql: include_str!("../../migrations/0002_metrics.postgres.sql"),
        },
        WORKSPACE_POSITIONS_MIGRATION,
        test_clock::fleet::MIGRATION,
        MigrationFile {
            version: 4,
            description: "dimension rollup",
            sql: include_str!("../../migrations/0004_dimension_rollup.postgres.sql"),
        },
        SIX_HOUR_ROLLUP_MIGRATION,
        MigrationFile {
            version: 6,
            description: "automation",
            sql: include_str!("../../migrations/0006_automation.postgres.sql"),
        },
        MigrationFile {
            version: 7,
            description: "report settings",
            sql: include_str!("../../migrations/0007_report_settings.postgres.sql"),
        },
        MULTI_DAY_ROLLUP_MIGRATION,
    ],
};

const WORKSPACE_POSITIONS_MIGRATION: MigrationFile = MigrationFile {
    version: 3,
    description: "workspace positions",
    sql: include_str!("../../migrations/0003_workspace_positions.sql"),
};

const SIX_HOUR_ROLLUP_MIGRATION: MigrationFile = MigrationFile {
    version: 5,
    description: "six hour rollup",
    sql: include_str!("../../migrations/0005_six_hour_rollup.sql"),
};

const MULTI_DAY_ROLLUP_MIGRATION: MigrationFile = MigrationFile {
    version: 8,
    description: "multi day rollup",
    sql: include_str!("../../migrations/0008_multi_day_rollup.sql"),
};

/// The consumer name of the conversation event stream.
pub const CONSUMER: &str = "conversation-events";

/// The aggregates, in one database.
#[derive(Debug, Clone)]
pub struct MetricsStore {
    db: Database,
    cursor: ConsumerCursor,
    statistics: PlannerStatistics,
}

/// The tables a batch of events looks rows up in.
const LOOKED_UP_TABLES: &[&str] = &[
    "conversation_facts",
    "opened_rollup",
    "closed_rollup",
    "dimension_rollup",
];

impl MetricsStore {
    /// A store over a migrated database.
    pub fn new(db: Database) -> Self {
        let cursor = ConsumerCursor::new(db.clone(), CONSUMER);
        let statistics = PlannerStatistics::new(db.clone(), LOOKED_UP_TABLES);
        Self {
            db,
            cursor,
            statistics,
        }
    }

    /// The consumer's cursor over the conversation event stream.
    pub fn cursor(&self) -> &ConsumerCursor {
        &self.cursor
    }
}
