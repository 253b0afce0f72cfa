DROP INDEX IF EXISTS {{schema}}.{{name "_runs_job"}};
DROP TABLE IF EXISTS {{table "_leases"}};
