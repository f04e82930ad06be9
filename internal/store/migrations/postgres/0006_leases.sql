-- Each node watches the servers of the parts of the fleet it leases
-- (installation_id % 64); a lease a node stops renewing expires and another
-- node takes the part over. Released marks a part handed over by a live
-- node (no own-outage guard needed by the next holder).
CREATE TABLE monitor_leases (
    part       INTEGER PRIMARY KEY,
    node       TEXT NOT NULL DEFAULT '',
    expires_at BIGINT NOT NULL DEFAULT 0,
    released   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE monitor_nodes (
    node    TEXT PRIMARY KEY,
    seen_at BIGINT NOT NULL
);
CREATE INDEX servers_part ON servers ((installation_id % 64));
INSERT INTO monitor_leases (part) VALUES (0), (1), (2), (3), (4), (5), (6), (7), (8), (9), (10), (11), (12), (13), (14), (15), (16), (17), (18), (19), (20), (21), (22), (23), (24), (25), (26), (27), (28), (29), (30), (31), (32), (33), (34), (35), (36), (37), (38), (39), (40), (41), (42), (43), (44), (45), (46), (47), (48), (49), (50), (51), (52), (53), (54), (55), (56), (57), (58), (59), (60), (61), (62), (63);
