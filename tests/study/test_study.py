"""The preference study: building, serving over real HTTP on 127.0.0.1, answers saved atomically
and kept across restarts, and the like / dislike rates."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

from condsynth.cli import main
from condsynth.errors import CondsynthError
from condsynth.study import StudyServer, build_study, study_report

SYSTEMS = ("alpha", "beta", "gamma")


@pytest.fixture
def folders(tmp_path):
    out = {}
    for k, name in enumerate(SYSTEMS):
        folder = tmp_path / name
        folder.mkdir()
        for i in range(4):
            Image.fromarray(np.full((8, 8, 3), 40 * k + i, np.uint8)).save(folder / f"{i}.png")
        out[name] = folder
    (tmp_path / "alpha" / "extra.png").write_bytes((tmp_path / "alpha" / "0.png").read_bytes())
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(4):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(inputs / f"{i}.png")
    return out, inputs


def get(url):
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read()


def post(url, value):
    data = value if isinstance(value, bytes) else json.dumps(value).encode()
    request = urllib.request.Request(url + "api/answer", data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def owner_of(study, item, system):
    key = json.loads((study / "key.json").read_text())
    return next(o for o, s in key["items"][item]["owners"].items() if s == system)


def test_build_writes_a_blind_self_contained_study(folders, tmp_path):
    systems, inputs = folders
    manifest = build_study(tmp_path / "study", systems, inputs)
    study = tmp_path / "study"
    assert [item["id"] for item in manifest["items"]] == [f"item{i:04d}" for i in range(4)]
    public = (study / "manifest.json").read_text() + (study / "index.html").read_text()
    assert not any(name in public for name in SYSTEMS)          # nothing names a system
    assert all(not any(name in p.as_posix() for name in SYSTEMS)
               for p in (study / "images").rglob("*"))
    item = manifest["items"][0]
    assert len(item["options"]) == 3 and (study / item["input"]).is_file()
    assert "<script" in public and "http://" not in public and "https://" not in public
    key = json.loads((study / "key.json").read_text())
    assert sorted(key["items"]["item0000"]["owners"].values()) == sorted(SYSTEMS)
    with pytest.raises(CondsynthError, match="already holds a study"):
        build_study(study, systems)
    assert build_study(study, systems, count=2, overwrite=True)["items"][1]["id"] == "item0001"
    with pytest.raises(CondsynthError, match="at least 2 systems"):
        build_study(tmp_path / "one", {"alpha": systems["alpha"]})


def test_server_saves_answers_atomically_and_keeps_them_across_restarts(folders, tmp_path):
    systems, inputs = folders
    study = tmp_path / "study"
    manifest = build_study(study, systems, inputs)
    item = manifest["items"][0]
    shown = [o["id"] for o in item["options"]]
    best, worst = owner_of(study, "item0000", "alpha"), owner_of(study, "item0000", "gamma")
    with StudyServer(study) as server:
        assert server.url.startswith("http://127.0.0.1:")
        status, body = get(server.url)
        assert status == 200 and manifest["study_id"].encode() in body
        assert get(server.url + item["options"][0]["src"])[0] == 200
        for private in ("key.json", "results.json", "%6Bey.json", "images/../key.json"):
            with pytest.raises(urllib.error.HTTPError) as err:
                get(server.url + private)
            assert err.value.code == 404
        answer = {"judge": "ann", "item": "item0000", "best": best, "worst": worst,
                  "shown": shown}
        assert post(server.url, answer) == (200, {"ok": True, "answered": 1})
        saved = json.loads((study / "results.json").read_text())["answers"]
        assert [(a["judge"], a["best"], a["worst"]) for a in saved] == [("ann", best, worst)]
        # Answering again replaces the earlier answer rather than counting twice.
        assert post(server.url, {**answer, "best": worst, "worst": best})[0] == 200
        assert len(json.loads((study / "results.json").read_text())["answers"]) == 1
        for bad in ({**answer, "worst": best, "best": best}, {**answer, "best": "nope"},
                    {**answer, "item": "item9999"}, {**answer, "judge": ""},
                    {**answer, "shown": shown[:2]}, b"{not json"):
            status, reply = post(server.url, bad)
            assert status == 400 and reply["error"]
        status, body = get(server.url + "api/answers?judge=ann")
        assert json.loads(body)["answers"] == {"item0000": {"best": worst, "worst": best}}
        assert not list(study.glob(".*.tmp"))                    # no half-written files left
    # A new server (a restart, or a reload of the page) sees every answer.
    with StudyServer(study) as server:
        status, body = get(server.url + "api/answers?judge=ann")
        assert json.loads(body)["answers"]["item0000"]["best"] == worst


def test_like_and_dislike_rates(folders, tmp_path):
    systems, _ = folders
    study = tmp_path / "study"
    manifest = build_study(study, systems)
    votes = [("ann", 0, "alpha", "gamma"), ("ann", 1, "alpha", "beta"),
             ("bob", 0, "beta", "gamma"), ("bob", 1, "alpha", "gamma")]
    with StudyServer(study) as server:
        for judge, index, best, worst in votes[:3]:
            item = manifest["items"][index]
            assert post(server.url, {
                "judge": judge, "item": item["id"], "best": owner_of(study, item["id"], best),
                "worst": owner_of(study, item["id"], worst),
                "shown": [o["id"] for o in item["options"]]})[0] == 200
    # The last vote comes from the page opened from disk, as a downloaded answers file.
    item = manifest["items"][1]
    downloaded = tmp_path / "answers-bob.json"
    downloaded.write_text(json.dumps({"study_id": manifest["study_id"], "answers": [{
        "judge": "bob", "item": item["id"], "best": owner_of(study, item["id"], "alpha"),
        "worst": owner_of(study, item["id"], "gamma"),
        "shown": [o["id"] for o in item["options"]]}]}))
    report = study_report(study, [downloaded])
    assert report["answers"] == 4 and report["judges"] == 2
    alpha, beta, gamma = (report["systems"][s] for s in SYSTEMS)
    assert alpha == {"shown": 4, "best": 3, "worst": 0, "like_rate": 0.75, "dislike_rate": 0.0}
    assert (beta["like_rate"], beta["dislike_rate"]) == (0.25, 0.25)
    assert (gamma["like_rate"], gamma["dislike_rate"]) == (0.0, 0.75)
    assert json.loads((study / "study_report.json").read_text()) == report


def test_study_commands(folders, tmp_path, capsys):
    systems, inputs = folders
    study = tmp_path / "cli-study"
    argv = ["study", "build", "--out", str(study), "--inputs", str(inputs)]
    for name, folder in systems.items():
        argv += ["--system", f"{name}={folder}"]
    assert main(argv) == 0
    assert "4 items x 3 systems" in capsys.readouterr().out
    assert main(["study", "report", str(study), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["answers"] == 0
    assert main(["study", "build", "--out", str(tmp_path / "x"), "--system", "oops"]) == 2
    assert "NAME=DIR" in capsys.readouterr().err
    assert main(["study", "report", str(tmp_path)]) == 2


def test_cross_site_writes_and_foreign_hosts_are_refused(folders, tmp_path):
    systems, inputs = folders
    study = tmp_path / "study"
    manifest = build_study(study, systems, inputs)
    item = manifest["items"][0]
    answer = {"judge": "eve", "item": "item0000", "best": item["options"][0]["id"],
              "worst": item["options"][1]["id"], "shown": [o["id"] for o in item["options"]]}
    with StudyServer(study) as server:
        own = f"http://127.0.0.1:{server.port}"

        def send(method, path, headers, body=None):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            connection.putrequest(method, path, skip_host=True)
            for key, value in {"Host": f"127.0.0.1:{server.port}", **headers}.items():
                connection.putheader(key, value)
            data = json.dumps(body).encode() if body is not None else b""
            connection.putheader("Content-Length", str(len(data)))
            connection.endheaders(data)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()

        for headers in ({"Origin": "http://attacker.example"}, {"Origin": "null"},
                        {"Origin": "http://127.0.0.1:1"}, {"Sec-Fetch-Site": "cross-site"}):
            status, _, body = send("POST", "/api/answer", headers, answer)
            assert status == 403 and "refused" in json.loads(body)["error"], headers
        assert not json.loads((study / "results.json").read_text())["answers"]
        status, _, _ = send("GET", "/", {"Host": "attacker.example"})
        assert status == 403
        status, headers, _ = send("POST", "/api/answer", {"Origin": own,
                                                          "Sec-Fetch-Site": "same-origin"},
                                  answer)
        assert status == 200
        status, headers, _ = send("GET", "/", {})
        assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
