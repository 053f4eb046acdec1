"""A small Flask app for tests/serve/test_http.py.

Not under wsgiref.validate.validator: the server sets wsgi.input_terminated, so Werkzeug
reads wsgi.input with a bare read(), which PEP 3333's read(size) (and so the validator)
does not allow. That is Werkzeug's documented use of the extension, not a server fault."""
import hashlib
import os

from flask import Flask, Response, jsonify, request, send_file, stream_with_context

app = Flask(__name__)


@app.route("/pid")
def pid():
    return str(os.getpid())


@app.route("/users/<int:user_id>/<name>")
def user(user_id, name):
    return jsonify(id=user_id, name=name, q=request.args.get("q"))


@app.route("/json", methods=["POST"])
def post_json():
    data = request.get_json()
    return jsonify(got=data, total=sum(data["numbers"])), 201


@app.route("/upload", methods=["POST"])
def upload():
    f = request.files["doc"]
    content = f.read()
    return jsonify(filename=f.filename, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
                   field=request.form.get("field"))


@app.route("/stream")
def stream():
    prefix = request.args.get("prefix", "")   # needs the request context while streaming

    @stream_with_context
    def gen():
        for i in range(5):
            yield "%s%d\n" % (prefix or request.args.get("prefix", ""), i)
    return Response(gen(), mimetype="text/plain")



@app.route("/download")
def download():
    # send_file (like Flask's static files) hands the file to wsgi.file_wrapper
    return send_file(request.args["path"], mimetype="application/octet-stream")
