"""The tasks read model's SQL: tables, the `actionable_tasks` and `task_tree` views, named queries.

Split from `projections.tasks` (which folds the events) so each file has one reason to change.
Every timestamp is TIMESTAMPTZ in UTC, taken from the JetStream time of an event.

`actionable_tasks` is `events.tasks.queue.refusal` in SQL, and `ORDER BY type_rank,
priority_rank, level DESC, created_seq` is `events.tasks.queue.order_key`: the list an agent is
offered is the list of tasks it can claim, in the order the command path would pick them.
"""

from __future__ import annotations

DDL: list[str] = [
    """CREATE TABLE IF NOT EXISTS tasks (
        id VARCHAR PRIMARY KEY,            -- task id from the subject tasks.<id>.<event>
        status VARCHAR NOT NULL,           -- pending | claimed | working | review | done | failed | blocked | cancelled | void | requires_manual | fix_pending
        project VARCHAR,                   -- project id, if any
        title VARCHAR NOT NULL,            -- one line
        description VARCHAR NOT NULL,      -- what to do
        "type" VARCHAR NOT NULL,           -- fix | regular | creative
        priority VARCHAR NOT NULL,         -- P0 | P1 | P2
        parent_id VARCHAR,                 -- parent task of a subtask
        "level" INTEGER NOT NULL,          -- 1 for a top-level task, 2 for a subtask
        root_id VARCHAR,                   -- top-level ancestor of a subtask
        depends_on VARCHAR[] NOT NULL,     -- tasks that must be done before this one is claimed
        must_haves VARCHAR NOT NULL,       -- what the result must contain
        success_criteria VARCHAR NOT NULL, -- how the result is judged
        assignee VARCHAR,                  -- the only agent that may claim it, if set
        claimed_by VARCHAR,                -- agent holding it while claimed/working/review
        max_rounds INTEGER,                -- round limit (warning at 80 %, blocked at the limit)
        rounds INTEGER NOT NULL,           -- rounds counted so far
        retry_count INTEGER NOT NULL,      -- failures so far (reset by reopened)
        attempts INTEGER NOT NULL,         -- agent runs started on it
        progress INTEGER,                  -- last reported progress, percent
        last_error VARCHAR,                -- error of the last failure
        status_reason VARCHAR,             -- why it is in its status (released, blocked, rejected, ...)
        resume_status VARCHAR,             -- where unblocked returns to
        not_before TIMESTAMPTZ,            -- not actionable before this time (retry backoff)
        fix_ids VARCHAR[] NOT NULL,        -- fix subtasks created for it
        root_cause_requested BOOLEAN NOT NULL, -- a root cause analysis was asked for
        outputs INTEGER NOT NULL,          -- outputs added
        comments INTEGER NOT NULL,         -- comments added
        created_seq BIGINT NOT NULL,       -- TASKS stream seq of created: the creation order
        created_at TIMESTAMPTZ,            -- time of created
        updated_at TIMESTAMPTZ,            -- time of the last event that changed it
        claimed_at TIMESTAMPTZ,            -- time of the last claim
        started_at TIMESTAMPTZ,            -- time of the last start
        finished_at TIMESTAMPTZ,           -- time it reached done, failed, cancelled or void
        last_seq BIGINT NOT NULL           -- TASKS stream seq of the last event about it (no-ops included)
    )""",
    """CREATE TABLE IF NOT EXISTS task_events (
        seq BIGINT PRIMARY KEY,            -- TASKS stream seq
        "at" TIMESTAMPTZ NOT NULL,         -- JetStream time
        task_id VARCHAR NOT NULL,          -- tasks.id
        event VARCHAR NOT NULL,            -- event name, e.g. claimed
        actor VARCHAR,                     -- agent_id, by or author of the event, else the Agl-Actor header
        data JSON NOT NULL,                -- the payload as decoded
        noop_reason VARCHAR                -- why evolve ignored it; NULL when it applied
    )""",
    """CREATE TABLE IF NOT EXISTS task_attempts (
        task_id VARCHAR NOT NULL,          -- tasks.id
        attempt INTEGER NOT NULL,          -- 1, 2, ... per task
        agent_id VARCHAR,                  -- the agent that ran
        session_id VARCHAR,                -- the agent runtime's session
        continuation INTEGER,              -- 0 for a fresh session, n for its n-th continuation
        started_at TIMESTAMPTZ,            -- time of attempt_started
        finished_at TIMESTAMPTZ,           -- time of attempt_finished
        outcome VARCHAR,                   -- classified outcome (completed, gateway_timeout, api_error, ...)
        exit_code INTEGER,                 -- process exit code
        transport VARCHAR,                 -- from the agent's JSON meta
        fallback_reason VARCHAR,           -- from the agent's JSON meta
        duration_ms BIGINT,                -- run time as the agent reported it
        task_status_at_exit VARCHAR,       -- task status when the run ended
        error VARCHAR,                     -- error text of a failed run
        PRIMARY KEY (task_id, attempt)
    )""",
    """CREATE TABLE IF NOT EXISTS task_outputs (
        seq BIGINT PRIMARY KEY,            -- TASKS stream seq of output_added
        task_id VARCHAR NOT NULL,          -- tasks.id
        agent_id VARCHAR NOT NULL,         -- who produced it
        "type" VARCHAR NOT NULL,           -- code | document | data | config | other
        title VARCHAR NOT NULL,
        content VARCHAR NOT NULL,          -- inline content (may be empty when content_path is set)
        content_path VARCHAR,              -- where the content lives, if not inline
        summary VARCHAR NOT NULL,
        "at" TIMESTAMPTZ NOT NULL          -- JetStream time
    )""",
    """CREATE TABLE IF NOT EXISTS task_comments (
        seq BIGINT PRIMARY KEY,            -- TASKS stream seq of commented
        task_id VARCHAR NOT NULL,          -- tasks.id
        author VARCHAR NOT NULL,
        body VARCHAR NOT NULL,
        "at" TIMESTAMPTZ NOT NULL          -- JetStream time
    )""",
    """CREATE TABLE IF NOT EXISTS mail (
        id VARCHAR PRIMARY KEY,            -- message id from the subject mail.<id>.<event>
        from_agent VARCHAR NOT NULL,       -- sender
        to_agent VARCHAR NOT NULL,         -- recipient
        performative VARCHAR NOT NULL,     -- inform | request
        subject VARCHAR NOT NULL,
        body VARCHAR NOT NULL,
        in_reply_to VARCHAR,               -- the message this one answers
        sent_at TIMESTAMPTZ NOT NULL,      -- time of sent
        "read" BOOLEAN NOT NULL,           -- the recipient read it (a reply implies reading)
        read_at TIMESTAMPTZ,
        replied BOOLEAN NOT NULL,          -- at least one reply was sent
        replied_at TIMESTAMPTZ,            -- time of the last reply
        reply_ids VARCHAR[] NOT NULL,      -- ids of the replies
        seq BIGINT NOT NULL,               -- MAIL stream seq of sent: the inbox order
        last_seq BIGINT NOT NULL           -- MAIL stream seq of the last event about it
    )""",
    """CREATE TABLE IF NOT EXISTS mail_events (
        seq BIGINT PRIMARY KEY,            -- MAIL stream seq
        "at" TIMESTAMPTZ NOT NULL,         -- JetStream time
        message_id VARCHAR NOT NULL,       -- mail.id
        event VARCHAR NOT NULL,            -- sent | read | replied
        actor VARCHAR,                     -- sender or reader
        data JSON NOT NULL,                -- the payload as decoded
        noop_reason VARCHAR                -- why evolve ignored it; NULL when it applied
    )""",
    # events.tasks.queue.refusal (agent-independent part) and the ranks of order_key
    """CREATE OR REPLACE VIEW actionable_tasks AS
    SELECT
        CASE t."type" WHEN 'fix' THEN 0 WHEN 'regular' THEN 1 WHEN 'creative' THEN 2 ELSE 3 END
            AS type_rank,
        CASE t.priority WHEN 'P0' THEN 0 WHEN 'P1' THEN 1 WHEN 'P2' THEN 2 ELSE 3 END
            AS priority_rank,
        t.*
    FROM tasks t
    WHERE t.status IN ('pending', 'fix_pending')
      AND (t.not_before IS NULL OR t.not_before <= now())
      AND NOT EXISTS (
          SELECT 1 FROM (SELECT unnest(t.depends_on) AS dep) d
          LEFT JOIN tasks x ON x.id = d.dep
          WHERE x.status IS DISTINCT FROM 'done')
      AND NOT EXISTS (
          SELECT 1 FROM tasks c WHERE c.parent_id = t.id AND c.status NOT IN ('done', 'void'))
      AND NOT EXISTS (
          SELECT 1 FROM tasks p WHERE p.id = t.parent_id AND p.status IN ('void', 'cancelled'))""",
    # every task under its top-level task: depth 0 for the root, path of ids from the root
    """CREATE OR REPLACE VIEW task_tree AS
    WITH RECURSIVE tree(id, root_task, depth, path, sort_key) AS (
        SELECT id, id, 0, [id], [created_seq] FROM tasks WHERE parent_id IS NULL
        UNION ALL
        SELECT c.id, tree.root_task, tree.depth + 1, list_append(tree.path, c.id),
               list_append(tree.sort_key, c.created_seq)
        FROM tasks c JOIN tree ON c.parent_id = tree.id
    )
    SELECT tree.root_task, tree.depth, tree.path, tree.sort_key, t.*
    FROM tree JOIN tasks t ON t.id = tree.id""",
]

_ORDER = "type_rank, priority_rank, \"level\" DESC, created_seq"

# Every parameter of a query must be bound (NULL for "any"): DuckDB refuses missing and extra ones.
QUERIES: dict[str, str] = {
    "list": (
        "SELECT * FROM tasks WHERE ($status IS NULL OR status = $status) "
        "AND ($agent IS NULL OR claimed_by = $agent OR assignee = $agent) "
        "AND ($project IS NULL OR project = $project) ORDER BY created_seq"
    ),
    "actionable": (
        "SELECT * EXCLUDE (type_rank, priority_rank) FROM actionable_tasks "
        "WHERE ($agent IS NULL OR assignee IS NULL OR assignee = $agent) "
        f"ORDER BY {_ORDER} LIMIT $limit"
    ),
    "get": "SELECT * FROM tasks WHERE id = $id",
    # agent health (/metrics): when each agent's held tasks last moved, its 429s, pending by type
    "held_since": (
        "SELECT claimed_by AS agent_id, epoch(min(updated_at)) AS since FROM tasks "
        "WHERE status IN ('claimed', 'working') AND claimed_by IS NOT NULL GROUP BY claimed_by"
    ),
    "api_errors": (
        "SELECT agent_id, count(*) AS n FROM task_attempts WHERE outcome = 'api_error' "
        "AND agent_id IS NOT NULL GROUP BY agent_id"
    ),
    "pending_by_type": "SELECT type, count(*) AS n FROM tasks WHERE status = 'pending' GROUP BY type",
    "history": (
        'SELECT seq, "at", event, actor, data, noop_reason FROM task_events '
        "WHERE task_id = $id ORDER BY seq"
    ),
    "attempts": "SELECT * FROM task_attempts WHERE task_id = $id ORDER BY attempt",
    "last_outcomes": (
        "SELECT agent_id, arg_max(outcome, finished_at) AS last_outcome, max(finished_at) AS last_finished_at, "
        "arg_max(task_id, finished_at) AS last_outcome_task FROM task_attempts "
        "WHERE outcome IS NOT NULL AND agent_id IS NOT NULL GROUP BY agent_id ORDER BY agent_id"
    ),
    "outputs": "SELECT * FROM task_outputs WHERE task_id = $id ORDER BY seq",
    "comments": "SELECT * FROM task_comments WHERE task_id = $id ORDER BY seq",
    "tree": (
        "SELECT * EXCLUDE (sort_key) FROM task_tree "
        "WHERE $id IS NULL OR list_contains(path, $id) ORDER BY sort_key"
    ),
    "inbox": (
        'SELECT *, count(*) FILTER (WHERE NOT "read") OVER () AS unread, '
        "count(*) FILTER (WHERE performative = 'request' AND NOT replied) OVER () AS unanswered "
        "FROM mail WHERE to_agent = $agent ORDER BY seq"
    ),
}
