-- The contact's full name folded to lower case by the service (Unicode-aware, unlike SQLite's
-- lower()), so the name filter finds "Ángela" from "ángela" on both engines. Additive: older
-- replicas ignore the column. Rows written before it get an ASCII-folded value here.
ALTER TABLE contacts ADD COLUMN search_name TEXT NOT NULL DEFAULT '';
UPDATE contacts SET search_name = lower(first_name || ' ' || last_name);
