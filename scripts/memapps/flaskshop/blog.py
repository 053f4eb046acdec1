"""The blog blueprint: index, post, posts by tag, archive by month."""
import itertools

from flask import Blueprint, render_template

from . import db

bp = Blueprint("blog", __name__)


def with_tags(posts):
    tags = {}
    for row in db.rows("SELECT post_id, tag FROM tags"):
        tags.setdefault(row["post_id"], []).append(row["tag"])
    return [dict(p, tags=tags.get(p["id"], [])) for p in posts]


@bp.route("/")
def index():
    return render_template("blog/index.html", posts=with_tags(db.rows("SELECT * FROM posts ORDER BY created DESC LIMIT 10")))


@bp.route("/<slug>")
def post(slug):
    row = db.one("SELECT * FROM posts WHERE slug = ?", slug)
    return render_template("blog/post.html", post=with_tags([row])[0])


@bp.route("/tag/<tag>")
def tag(tag):
    posts = db.rows("SELECT p.* FROM posts p JOIN tags t ON t.post_id = p.id WHERE t.tag = ? ORDER BY created", tag)
    return render_template("blog/index.html", posts=with_tags(posts), tag=tag)


@bp.route("/archive")
def archive():
    posts = db.rows("SELECT id, slug, title, created FROM posts ORDER BY created")
    months = [(m, list(ps)) for m, ps in itertools.groupby(posts, key=lambda p: p["created"][:7])]
    return render_template("blog/archive.html", months=months)
