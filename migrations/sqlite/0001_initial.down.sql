DROP TABLE runs;
DROP TABLE failures;
DROP TABLE items;
