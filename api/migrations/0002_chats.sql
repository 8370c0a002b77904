-- Chats, membership, the transactional outbox, and send idempotency keys.
CREATE TABLE chats (
    id          BIGSERIAL PRIMARY KEY,
    title       TEXT NOT NULL,
    created_by  BIGINT NOT NULL REFERENCES users (id),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- role: owner (one per chat, the creator), admin, member. Owners and admins manage members.
CREATE TABLE chat_members (
    chat_id    BIGINT NOT NULL REFERENCES chats (id) ON DELETE CASCADE,
    user_id    BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (chat_id, user_id)
);
CREATE INDEX chat_members_user ON chat_members (user_id);

-- Every state change writes its event here in the same transaction; the relay publishes rows
-- in id order and deletes them once the broker acknowledged them.
CREATE TABLE outbox (
    id          BIGSERIAL PRIMARY KEY,
    topic       TEXT NOT NULL,
    key         TEXT NOT NULL,
    payload     BYTEA NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- A client-supplied idempotency key per sender: a retried send returns the first message id.
CREATE TABLE send_keys (
    user_id     BIGINT NOT NULL,
    key         TEXT NOT NULL,
    chat_id     BIGINT NOT NULL,
    message_id  TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, key)
);
CREATE INDEX send_keys_created ON send_keys (created_at);
