-- Drops what 0001_initial.up.sql created. The vector extension stays: other
-- tables may use it.
DROP TABLE {{table "_runs"}};
DROP TABLE {{table "_failures"}};
DROP TABLE {{table ""}};
