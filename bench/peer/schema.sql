-- bench/e2e's peer: the tables its pywa handlers store into, one row per message and per status sighting.
CREATE TABLE peer_messages (
    wamid text PRIMARY KEY,
    sender text NOT NULL,
    sent_at timestamptz NOT NULL
);
CREATE TABLE peer_statuses (
    wamid text NOT NULL,
    status text NOT NULL,
    status_at timestamptz NOT NULL,
    PRIMARY KEY (wamid, status)
);
