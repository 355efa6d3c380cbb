//! Statements of any length (multi-row inserts, IN lists), with each engine's placeholders:
//! sqlx's `QueryBuilder` over the `Any` driver writes `?`, which PostgreSQL refuses, and SQLite
//! binds numbered ones (`$1`) by looking each name up among all of them, which at thousands of
//! parameters costs more than the statement.

use std::fmt::Write as _;

use charla_runtime::db::Backend;
use sqlx::any::AnyArguments;
use sqlx::query::Query;
use sqlx::{Any, AssertSqlSafe};

/// A bound value.
#[derive(Debug, Clone)]
pub enum Param {
    Text(String),
    Int(i64),
    MaybeInt(Option<i64>),
    MaybeBytes(Option<Vec<u8>>),
}

impl From<String> for Param {
    fn from(value: String) -> Self {
        Self::Text(value)
    }
}

impl From<&str> for Param {
    fn from(value: &str) -> Self {
        Self::Text(value.to_owned())
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<Option<i64>> for Param {
    fn from(value: Option<i64>) -> Self {
        Self::MaybeInt(value)
    }
}

impl From<Vec<u8>> for Param {
    fn from(value: Vec<u8>) -> Self {
        Self::MaybeBytes(Some(value))
    }
}

impl From<Option<Vec<u8>>> for Param {
    fn from(value: Option<Vec<u8>>) -> Self {
        Self::MaybeBytes(value)
    }
}

/// SQL text and its parameters, in order.
#[derive(Debug)]
pub struct Statement {
    sql: String,
    params: Vec<Param>,
    /// `$1, $2...` (PostgreSQL) or `?` in order (SQLite).
    numbered: bool,
}

impl Statement {
    /// A statement for `backend` starting with `sql` (which has no placeholders of its own).
    pub fn new(backend: Backend, sql: impl Into<String>) -> Self {
        Self {
            sql: sql.into(),
            params: Vec::new(),
            numbered: backend == Backend::Postgres,
        }
    }

    /// Appends SQL text.
    pub fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder bound to `value`.
    pub fn push_bind(&mut self, value: impl Into<Param>) -> &mut Self {
        self.params.push(value.into());
        if self.numbered {
            let _infallible = write!(self.sql, "${}", self.params.len());
        } else {
            self.sql.push('?');
        }
        self
    }

    /// Appends `($a, $b, ...)` bound to `values`.
    pub fn push_list<T: Into<Param>>(&mut self, values: impl IntoIterator<Item = T>) -> &mut Self {
        self.push("(");
        for (index, value) in values.into_iter().enumerate() {
            if index > 0 {
                self.push(", ");
            }
            self.push_bind(value);
        }
        self.push(")")
    }

    /// Appends `VALUES (...), (...)`, one tuple per item, its values bound by `row`.
    pub fn push_values<I>(
        &mut self,
        items: I,
        mut row: impl FnMut(&mut Tuple<'_>, I::Item),
    ) -> &mut Self
    where
        I: IntoIterator,
    {
        self.push("VALUES ");
        for (index, item) in items.into_iter().enumerate() {
            self.push(if index > 0 { ", (" } else { "(" });
            row(
                &mut Tuple {
                    statement: self,
                    first: true,
                },
                item,
            );
            self.push(")");
        }
        self
    }

    /// The query, ready to run, prepared for this run only.
    ///
    /// Not kept in the connection's statement cache: a generated statement's text changes with
    /// its number of rows or values, so most texts never come back, and each one cached held its
    /// compiled form (SQLite's bytecode for a 500-row upsert runs to tens of KiB) until 100 others
    /// pushed it out, on every pooled connection. Keeping none cut the metrics service's RSS after
    /// a bench run by 16 MiB on SQLite and 13 to 24 MiB on PostgreSQL, with the consumer and
    /// reports no slower: a text seen for the first time is prepared either way, and on
    /// PostgreSQL a full cache also paid a round trip to close the statement it evicted.
    pub fn query(self) -> Query<'static, Any, AnyArguments> {
        self.bound(false)
    }

    /// The query, kept prepared in the connection's statement cache: for a report's reads, whose
    /// texts vary only with the number of ranges per grain, so a few come back again and again.
    /// Each run of one then skips parsing and, on PostgreSQL once a generic plan is chosen,
    /// planning: a dashboard's two rollup reads spent about 0.4 ms each on those alone. Only for
    /// statements that name their columns: on PostgreSQL a kept `SELECT *` fails ("cached plan
    /// must not change result type") once another replica's migration adds a column.
    pub fn kept_query(self) -> Query<'static, Any, AnyArguments> {
        self.bound(true)
    }

    /// The statement's text and values handed over, not copied (a consumer's statement binds
    /// up to 500 rows' sketches).
    fn bound(self, kept: bool) -> Query<'static, Any, AnyArguments> {
        let mut query = sqlx::query(AssertSqlSafe(self.sql)).persistent(kept);
        for param in self.params {
            query = match param {
                Param::Text(value) => query.bind(value),
                Param::Int(value) => query.bind(value),
                Param::MaybeInt(value) => query.bind(value),
                Param::MaybeBytes(value) => query.bind(value),
            };
        }
        query
    }
}

/// The values of one tuple of `push_values`.
pub struct Tuple<'s> {
    statement: &'s mut Statement,
    first: bool,
}

impl Tuple<'_> {
    /// Appends a value to the tuple.
    pub fn push_bind(&mut self, value: impl Into<Param>) -> &mut Self {
        if !self.first {
            self.statement.push(", ");
        }
        self.first = false;
        self.statement.push_bind(value);
        self
    }
}

#[cfg(test)]
mod tests {
    use sqlx::Execute;

    use super::*;

    #[test]
    fn generated_statements_are_not_kept_prepared() {
        let statement = || {
            let mut statement = Statement::new(Backend::Sqlite, "SELECT 1 WHERE 1 IN ");
            statement.push_list([1_i64, 2, 3]);
            statement
        };
        assert_eq!(statement().sql, "SELECT 1 WHERE 1 IN (?, ?, ?)");
        assert!(!Execute::persistent(&statement().query()));
        assert!(Execute::persistent(&statement().kept_query()));
    }
}
