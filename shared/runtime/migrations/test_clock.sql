-- The test clock's time (CHARLA_TEST_CLOCK), one row shared by every replica of a service on this
-- database: a move through any replica moves them all, and a restarted replica resumes it.
-- Empty unless a test clock ran. The same SQL on SQLite and PostgreSQL.
CREATE TABLE test_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    now_micros BIGINT NOT NULL
);
