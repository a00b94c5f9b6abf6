"""Initial schema: teams, submissions (both tracks), replicates, the job queue, verifications, rate-limit windows,
phases.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from polypbench.leaderboard import limits

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "teams",
        sa.Column("id", _id(), primary_key=True),
        sa.Column("name", sa.String(limits.TEAM_NAME), nullable=False, unique=True),
        sa.Column("token_hash", sa.String(limits.SHA256), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_teams_token_hash", "teams", ["token_hash"], unique=True)
    op.create_table(
        "submissions",
        sa.Column("id", _id(), primary_key=True),
        sa.Column("team_id", _id(), sa.ForeignKey("teams.id"), nullable=False),
        sa.Column("track", sa.String(16), nullable=False),
        sa.Column("method", sa.String(limits.METHOD), nullable=False),
        sa.Column("paper_url", sa.String(limits.URL), nullable=True),
        sa.Column("code_url", sa.String(limits.URL), nullable=True),
        sa.Column("filename", sa.String(limits.FILENAME), nullable=False),
        sa.Column("declaration", sa.Boolean(), nullable=False),
        sa.Column("config", sa.Text(), nullable=True),
        sa.Column("checkpoint_sha256", sa.String(limits.SHA256), nullable=True),
        sa.Column("file_sha256", sa.String(limits.SHA256), nullable=True),
        sa.Column("split_hashes", sa.String(limits.SPLIT_HASHES), nullable=True),
        sa.Column("idempotency_key", sa.String(limits.IDEMPOTENCY_KEY), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("primary_value", sa.Float(), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=False),
        sa.Column("hidden_json", sa.Text(), nullable=True),
        sa.UniqueConstraint("team_id", "idempotency_key", name="uq_submission_key"),
    )
    op.create_index("ix_submissions_team_id", "submissions", ["team_id"])
    op.create_index("ix_submissions_created_at", "submissions", ["created_at"])
    op.create_table(
        "replicates",
        sa.Column("id", _id(), primary_key=True),
        sa.Column("submission_id", _id(), sa.ForeignKey("submissions.id"), nullable=False),
        sa.Column("scope", sa.String(limits.SCOPE), nullable=False),
        sa.Column("key", sa.String(limits.METRIC_KEY), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("replicates", sa.LargeBinary(), nullable=False),
        sa.Column("jackknife", sa.LargeBinary(), nullable=False),
        sa.Column("strata", sa.LargeBinary(), nullable=False),
        sa.Column("resamples", sa.String(limits.RESAMPLES), nullable=False),
        sa.UniqueConstraint("submission_id", "scope", "key", name="uq_replicate"),
    )
    op.create_index("ix_replicates_submission_id", "replicates", ["submission_id"])
    op.create_table(
        "jobs",
        sa.Column("id", _id(), primary_key=True),
        sa.Column("team_id", _id(), sa.ForeignKey("teams.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", sa.DateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(limits.RATE_KEY), nullable=True),
        sa.Column("lease_expires", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=True),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("error", sa.String(limits.ERROR), nullable=True),
        sa.Column("method", sa.String(limits.METHOD), nullable=False),
        sa.Column("paper_url", sa.String(limits.URL), nullable=True),
        sa.Column("code_url", sa.String(limits.URL), nullable=True),
        sa.Column("architecture", sa.String(limits.ARCHITECTURE), nullable=False),
        sa.Column("config", sa.Text(), nullable=False),
        sa.Column("weights_sha256", sa.String(limits.SHA256), nullable=False),
        sa.Column("weights_bytes", sa.BigInteger(), nullable=False),
        sa.Column("submission_id", _id(), sa.ForeignKey("submissions.id"), nullable=True),
        sa.Column("idempotency_key", sa.String(limits.IDEMPOTENCY_KEY), nullable=True),
        sa.UniqueConstraint("team_id", "idempotency_key", name="uq_job_key"),
    )
    op.create_index("ix_jobs_team_id", "jobs", ["team_id"])
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_table(
        "verifications",
        sa.Column("id", _id(), primary_key=True),
        sa.Column("submission_id", _id(), sa.ForeignKey("submissions.id"), nullable=False, unique=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("detail", sa.String(limits.ERROR), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "rate_hits",
        sa.Column("key", sa.String(limits.RATE_KEY), primary_key=True),
        sa.Column("window", sa.BigInteger(), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    op.create_index("ix_rate_hits_window", "rate_hits", ["window"])
    op.create_table(
        "phases",
        sa.Column("track", sa.String(16), primary_key=True),
        sa.Column("closed_at", sa.DateTime(), nullable=True),
    )


def downgrade() -> None:
    for table in ("phases", "rate_hits", "verifications", "jobs", "replicates", "submissions", "teams"):
        op.drop_table(table)
