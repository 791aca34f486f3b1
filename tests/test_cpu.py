"""The CPU flag check that guards a worker deployed with the AVX2 + FMA wheels: parsing
/proc/cpuinfo, the setting, and a cold start that refuses to load dlib on a CPU without
the flags (through functions-framework's own request handling, as Cloud Run calls it)."""

from __future__ import annotations

import base64
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import functions_framework
import pytest

from functions import worker
from functions.worker_assets import AssetCache
from shared.config import Settings
from shared.cpu import CPUINFO, blas_core_type, choose_blas_kernels, missing_cpu_flags
from shared.jobs import Job
from shared.models import ModelError
from shared.texts import text
from stack.bot_api import BotApiServer

REPO = Path(__file__).resolve().parent.parent
TOKEN = "555111:cpu-check-token"

# Abridged from a Cloud Run instance (Intel Xeon, AVX-512) and from an older Xeon that
# predates AVX2 (Sandy Bridge): the same layout, one block per logical CPU.
CPUINFO_AVX2 = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU @ 2.20GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl xtopology \
nonstop_tsc cpuid tsc_known_freq pni pclmulqdq ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic \
movbe popcnt aes xsave avx f16c rdrand hypervisor lahf_lm abm 3dnowprefetch bmi1 hle avx2 \
smep bmi2 erms invpcid rtm avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd
bugs\t\t: spectre_v1 spectre_v2 spec_store_bypass swapgs taa mmio_stale_data retbleed

processor\t: 1
vendor_id\t: GenuineIntel
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep sse sse2 ssse3 fma avx avx2
"""
CPUINFO_AVX_ONLY = """\
processor\t: 0
vendor_id\t: GenuineIntel
model name\t: Intel(R) Xeon(R) CPU E5-2670 0 @ 2.60GHz
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush \
mmx fxsr sse sse2 ss ht syscall nx pdpe1gb rdtscp lm constant_tsc rep_good nopl pni \
pclmulqdq ssse3 cx16 pcid sse4_1 sse4_2 x2apic popcnt tsc_deadline_timer aes xsave avx \
hypervisor lahf_lm xsaveopt
"""
# ARM Linux lists "Features", not "flags": the check cannot tell, so it reports nothing.
CPUINFO_ARM = "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd evtstrm aes crc32\n"


def test_a_cpu_with_avx2_and_fma_lacks_nothing() -> None:
    assert missing_cpu_flags(["avx2", "fma"], CPUINFO_AVX2) == []
    assert missing_cpu_flags(("AVX2", " fma "), CPUINFO_AVX2) == []


def test_a_cpu_without_avx2_and_fma_lacks_both_in_order() -> None:
    assert missing_cpu_flags(["avx2", "fma", "avx"], CPUINFO_AVX_ONLY) == ["avx2", "fma"]
    assert missing_cpu_flags(["fma", "avx2"], CPUINFO_AVX_ONLY) == ["fma", "avx2"]


def test_flags_are_whole_words() -> None:
    # "avx512f" and "avx2" are on the line; "avx5" and "avx51" are not flags.
    assert missing_cpu_flags(["avx5", "avx51"], CPUINFO_AVX2) == ["avx5", "avx51"]


def test_unknown_cpus_and_empty_requirements_report_nothing(tmp_path, monkeypatch) -> None:
    assert missing_cpu_flags(["avx2"], CPUINFO_ARM) == []
    assert missing_cpu_flags(["avx2"], "") == []
    assert missing_cpu_flags([], CPUINFO_AVX_ONLY) == []
    assert missing_cpu_flags(["", " "], CPUINFO_AVX_ONLY) == []
    monkeypatch.setattr("shared.cpu.CPUINFO", tmp_path / "no-such-cpuinfo")
    assert missing_cpu_flags(["avx2"]) == []


def test_this_machine_is_read_from_proc_cpuinfo() -> None:
    if "flags" not in (CPUINFO.read_text() if CPUINFO.exists() else ""):
        pytest.skip("no /proc/cpuinfo with a flags line on this machine")
    assert missing_cpu_flags(["no_such_flag", "sse2"]) == ["no_such_flag"]


def test_settings_read_the_flags_comma_separated(monkeypatch) -> None:
    monkeypatch.delenv("LOOKALIKE_REQUIRED_CPU_FLAGS", raising=False)
    assert Settings.from_env().required_cpu_flags == ()
    assert Settings().required_cpu_flags == ()
    monkeypatch.setenv("LOOKALIKE_REQUIRED_CPU_FLAGS", "avx2,fma")
    assert Settings.from_env().required_cpu_flags == ("avx2", "fma")
    monkeypatch.setenv("LOOKALIKE_REQUIRED_CPU_FLAGS", " avx2 , fma ,")
    assert Settings.from_env().required_cpu_flags == ("avx2", "fma")
    monkeypatch.setenv("LOOKALIKE_REQUIRED_CPU_FLAGS", "")
    assert Settings.from_env().required_cpu_flags == ()


def test_cold_start_refuses_a_cpu_without_the_flags(tmp_path, caplog) -> None:
    cache = AssetCache(Settings(required_cpu_flags=("avx2", "no_such_flag"),
                                cache_dir=str(tmp_path)))
    with (caplog.at_level(logging.ERROR, logger="functions.worker_assets"),
          pytest.raises(ModelError, match="lacks no_such_flag") as raised):
        cache.get()
    assert "WORKER_WHEELS=pypi" in str(raised.value)
    assert any("no_such_flag" in r.getMessage() for r in caplog.records)
    # Nothing half-loaded stays behind: the next call checks again, and fails again.
    with pytest.raises(ModelError):
        cache.get()
    assert list(tmp_path.iterdir()) == []  # neither models nor index were fetched


def test_cold_start_with_flags_the_cpu_has_loads_as_usual(tmp_path) -> None:
    if missing_cpu_flags(["avx2", "fma", "no_such_flag"]) != ["no_such_flag"]:
        pytest.skip("this machine's CPU flags are unknown or lack avx2 and fma")
    assets = AssetCache(Settings(required_cpu_flags=("avx2", "fma"),
                                 cache_dir=str(tmp_path))).get()
    assert len(assets.index.celebrities) > 0


def _push_body(job: Job) -> dict:
    """A Pub/Sub push request body, as the subscription sends it to the function."""
    published = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    return {"message": {"data": base64.b64encode(job.to_bytes()).decode(), "messageId": "71",
                        "publishTime": published, "attributes": {}},
            "subscription": "projects/local-project/subscriptions/lookalike-worker"}


def test_worker_answers_not_ready_and_keeps_serving_when_the_cpu_lacks_flags(
        monkeypatch, tmp_path, caplog) -> None:
    """A deployment error a retry cannot fix: the user is told once that the bot is not
    ready, the job is acknowledged (no retries into the dead-letter topic), the log names
    the flags, and the process lives on."""
    with BotApiServer(TOKEN) as api:
        for name, value in {"REQUIRED_CPU_FLAGS": "no_such_flag", "CACHE_DIR": str(tmp_path),
                            "TELEGRAM_API_URL": api.url}.items():
            monkeypatch.setenv("LOOKALIKE_" + name, value)
        for name in ("MODELS_URI", "INDEX_URI"):
            monkeypatch.delenv("LOOKALIKE_" + name, raising=False)
        # Markers on a local directory: the redelivery is known and not answered again.
        monkeypatch.setenv("LOOKALIKE_MARKERS_URI", str(tmp_path / "markers"))
        monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
        worker.instance_state.reset()
        try:
            app = functions_framework.create_app(target="worker", source=str(REPO / "main.py"),
                                                 signature_type="cloudevent")
            client = app.test_client()
            file = api.add_file(b"\xff\xd8 never downloaded", "photo.jpg")
            job = Job(update_id=1, chat_id=77, message_id=2, file_id=file["file_id"],
                      file_unique_id=file["file_unique_id"], width=0, height=0,
                      received_at=time.time())
            with caplog.at_level(logging.ERROR):
                statuses = [client.post("/projects/local-project/topics/lookalike-jobs",
                                        json=_push_body(job)).status_code for _ in range(2)]
            assert statuses == [200, 200]  # acknowledged, the redelivery too
            [reply] = api.sent
            assert (reply.method, reply.text) == ("sendMessage", text("not_ready", "en"))
            assert api.downloads() == 0
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert any("lacks no_such_flag" in r.getMessage() for r in errors)
        finally:
            worker.instance_state.reset()


# -- OpenBLAS kernels -----------------------------------------------------------------

AVX512_FLAGS = "avx2 fma avx512f avx512cd avx512bw avx512dq avx512vl"


def test_blas_kernels_follow_the_instruction_set() -> None:
    assert blas_core_type(f"flags\t: sse2 {AVX512_FLAGS}\n") == "SkylakeX"
    # Some AVX-512 but not the whole SkylakeX set: the AVX2 kernels.
    assert blas_core_type(CPUINFO_AVX2) == "Haswell"
    assert blas_core_type(CPUINFO_AVX_ONLY) is None
    assert blas_core_type(CPUINFO_ARM) is None


def test_an_explicit_openblas_coretype_is_kept(tmp_path, monkeypatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"flags\t: {AVX512_FLAGS}\n")
    monkeypatch.setattr("shared.cpu.CPUINFO", cpuinfo)
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    choose_blas_kernels()
    assert os.environ["OPENBLAS_CORETYPE"] == "Zen"
    monkeypatch.delenv("OPENBLAS_CORETYPE")
    choose_blas_kernels()
    assert os.environ["OPENBLAS_CORETYPE"] == "SkylakeX"


def _kernels_this_cpu_gets() -> str:
    expected = blas_core_type()
    if expected is None:
        pytest.skip("this CPU has neither AVX-512 nor AVX2: OpenBLAS keeps its own choice")
    return expected


def _python_without_a_chosen_core(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Runs `code` in a new interpreter in the repo, with no OPENBLAS_CORETYPE inherited."""
    inherited = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    return subprocess.run([sys.executable, "-c", code], cwd=REPO, env={**inherited, **env},
                          capture_output=True, text=True, timeout=120, check=True)


def test_dlibs_openblas_runs_the_chosen_kernels() -> None:
    # OpenBLAS names the kernels it loaded when OPENBLAS_VERBOSE=2; dlib's OpenBLAS loads
    # with the models, after any other (numpy's) already printed its own line.
    expected = _kernels_this_cpu_gets()
    done = _python_without_a_chosen_core(
        "import numpy, sys; print('--', file=sys.stderr, flush=True); "
        "from shared.models import load_models; load_models(); import dlib; "
        "print(dlib.DLIB_USE_BLAS)", OPENBLAS_VERBOSE="2")
    if done.stdout.strip() != "True":
        pytest.skip("the installed dlib has no BLAS (dlib-bin)")
    after_numpy = done.stderr.split("--", 1)[1]
    assert f"Core: {expected}" in after_numpy, done.stderr


def test_kernels_named_after_dlib_loaded_are_reported(tmp_path, monkeypatch, caplog) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"flags\t: {AVX512_FLAGS}\n")
    monkeypatch.setattr("shared.cpu.CPUINFO", cpuinfo)
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    monkeypatch.delitem(sys.modules, "dlib", raising=False)
    with caplog.at_level(logging.WARNING, logger="shared.cpu"):
        assert choose_blas_kernels() == "SkylakeX"  # in time: nothing to report
        assert caplog.records == []
        assert choose_blas_kernels() is None  # named already: left alone
        monkeypatch.delenv("OPENBLAS_CORETYPE")
        monkeypatch.setitem(sys.modules, "dlib", object())  # as if imported first
        assert choose_blas_kernels() == "SkylakeX"
    assert any("after dlib was imported" in r.getMessage() for r in caplog.records)


def test_entry_points_name_the_kernels_before_dlib_can_load() -> None:
    # main.py (both functions and the command line) names them on import, so a dlib
    # imported right after it, before any model is loaded, gets them.
    expected = _kernels_this_cpu_gets()
    done = _python_without_a_chosen_core(
        "import os, sys; assert 'dlib' not in sys.modules; import main; "
        "print(os.environ['OPENBLAS_CORETYPE'])")
    assert done.stdout.strip() == expected
