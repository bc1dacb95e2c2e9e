"""``flask tokens create|list|revoke`` — manage API tokens."""
from __future__ import annotations

import click
from flask import Blueprint

from app.extensions import db
from app.jobs.models import utcnow
from app.owners.identity import hash_token, new_token
from app.owners.models import ApiToken

bp = Blueprint("tokens", __name__, cli_group="tokens")


@bp.cli.command("create")
@click.argument("owner")
@click.option("--name", default="default", help="A label to recognise the token by.")
def create_token(owner: str, name: str) -> None:
    """Create a token that acts as OWNER and print it (it is not shown again)."""
    token = new_token()
    db.session.add(ApiToken(owner=owner, name=name, token_hash=hash_token(token)))
    db.session.commit()
    click.echo(token)


@bp.cli.command("list")
def list_tokens() -> None:
    """List tokens (never their secret)."""
    for row in db.session.execute(db.select(ApiToken).order_by(ApiToken.id)).scalars():
        status = f"revoked {row.revoked_at:%Y-%m-%d}" if row.revoked_at else "active"
        click.echo(f"{row.id}\t{row.owner}\t{row.name}\t{status}")


@bp.cli.command("revoke")
@click.argument("token_id", type=int)
def revoke_token(token_id: int) -> None:
    """Revoke the token with TOKEN_ID."""
    row = db.session.get(ApiToken, token_id)
    if row is None:
        raise click.ClickException(f"no token with id {token_id}")
    row.revoked_at = utcnow()
    db.session.commit()
    click.echo(f"revoked token {token_id} of {row.owner}")
