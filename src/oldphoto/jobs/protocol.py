"""The boundary between Snakemake and a job, both ends: every task's settings, typed, once.

A rule's ``shell:`` line runs ``python -m oldphoto.jobs TASK ARGUMENTS``
(:mod:`oldphoto.jobs.entry`).
This module says what the arguments are, how the run plan writes them (:func:`job_command`,
:func:`file_arguments`, :func:`setting_arguments`) and how the job reads them back
(:func:`parse_command_line`, :func:`read_settings`)::

    rule=NAME log=PATH threads=N      written by the rule's shell line (workflow/rules/common.smk)
    in.NAME=PATH  in.NAME[]=PATH      the job's named inputs (a list: one argument per file)
    out.NAME=PATH                     its named outputs
    image=STEM                        the photo (or the network, for prepare_checkpoint)
    NAME=VALUE                        one of the task's settings (:data:`TASKS`)

**Settings.**  Each task declares its settings once (:data:`TASKS`): name, type, and whether
the setting may not apply to a photo (``optional``: ``None``, written by leaving the argument
out).  A setting has one name from the config key to the function that uses it
(``face_blending`` in ``config.yaml``, the photo sheet, the run plan, this table, the task and
:func:`oldphoto.stages.compose_final`); its text is ``true``/``false`` for a boolean, digits for
an integer, the value for a choice, a mode's key for a :class:`~oldphoto.mode.Mode`.  The job
reads typed values (:func:`read_settings`), never ``"True"`` or ``"-"``.

**What an image records.**  The images a job writes carry ``oldphoto:settings``
(:func:`image_record`), and the final output its provenance settings (:func:`recorded`); both
keep the names and texts of the record's format (``docs/archival.md``), which predate this table:
a setting may be recorded under another name (``face_blending`` as ``blending``), ``None`` as
``-`` in the images of stages 1-3.

**Scheduling** (device, threads, memory budget, workers) is no setting: changing it must rerun
nothing, so it reaches jobs through their environment (:data:`SCHEDULING`,
:func:`scheduling_environment`, :func:`read_scheduling`), never through a rule's params.

**The outcome of a job** is one line in its log that the run summary reads back
(:func:`failed_line`, :func:`retried_line`, :func:`read_outcome_line`).

Standard library only, and nothing that imports ``inspect``: the job's entry point imports this
module before every job.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple

ENTRY_MODULE = "oldphoto.jobs"
"""``python -m oldphoto.jobs``: the command of every rule's shell line."""

HANDLER = "oldphoto.jobs.tasks:run_task"
"""The warm worker's handler (:mod:`oldphoto.worker`) of every job."""

FRAMEWORK_ARGUMENTS = ("rule", "log", "threads", "image")
"""Arguments every job takes besides its files and settings (no setting takes these names)."""


# ---------------------------------------------------------------------------------------------
# Kinds of values


class Kind(NamedTuple):
    """How values of one type cross the command line, and how the images of stages 1-3 record
    them (``record``: the text the record's format has always used)."""

    name: str
    parse: Callable[[str], Any]
    text: Callable[[Any], str]
    record: Callable[[Any], str] = str


def _parse_bool(text: str) -> bool:
    if text == "true":
        return True
    if text == "false":
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _bool_text(value: Any) -> str:
    if not isinstance(value, bool):
        raise ValueError(f"expected a boolean, got {value!r}")
    return "true" if value else "false"


def _int_text(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return str(value)


def _text_text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"expected a non-empty string, got {value!r}")
    return value


def _parse_mode(text: str):
    from oldphoto.mode import Mode

    return Mode.from_key(text)


def _mode_text(value: Any) -> str:
    key = getattr(value, "key", None)
    if not isinstance(key, str):
        raise ValueError(f"expected a Mode, got {value!r}")
    return key


BOOL = Kind("bool", _parse_bool, _bool_text)
INT = Kind("int", int, _int_text)
TEXT = Kind("text", str, _text_text)
MODE = Kind("mode", _parse_mode, _mode_text, _mode_text)
"""A photo's :class:`~oldphoto.mode.Mode`, written as its key (``scratch+hr``)."""


def choice(*values: str) -> Kind:
    """One of ``values`` (an enum of the config schema)."""

    def check(value: Any) -> str:
        if value not in values:
            raise ValueError(f"expected one of {', '.join(values)}, got {value!r}")
        return value

    return Kind("one of " + "|".join(values), check, check)


# ---------------------------------------------------------------------------------------------
# Settings and tasks


class Setting(NamedTuple):
    """One setting of a task.

    Attributes:
        name: the config key (or the run plan's name, for what no key sets, e.g. ``mode``).
        kind: its type (:data:`BOOL`, :data:`INT`, :data:`TEXT`, :data:`MODE`, :func:`choice`).
        optional: ``None`` means "does not apply to this photo" (left off the command line).
        recorded_as: the name in the images' record; ``""``: the setting's own name; ``None``:
            not recorded (what shapes only the report's views, and the backend, stated apart).
        record: how the images of stages 1-3 record it (default: the kind's record text,
            ``-`` for ``None``).
    """

    name: str
    kind: Kind
    optional: bool = False
    recorded_as: str | None = ""
    record: Callable[[Any], str] | None = None

    @property
    def record_name(self) -> str | None:
        return self.name if self.recorded_as == "" else self.recorded_as


class Task(NamedTuple):
    """One job kind: its settings, whether it may run a network (it then takes a device and, on
    a workstation, a GPU slot; its jobs share the warm workers of pool ``net``), and whether it
    runs in the job's own process (one-off jobs that gain nothing from a warm worker).
    ``records``: entries of the images' record computed from several settings."""

    name: str
    settings: tuple[Setting, ...]
    device: bool = False
    in_process: bool = False
    records: Mapping[str, Callable[[Mapping[str, Any]], str]] = {}

    def setting(self, name: str) -> Setting:
        for setting in self.settings:
            if setting.name == name:
                return setting
        raise KeyError(f"task {self.name!r} has no setting {name!r}")


NOT_APPLICABLE_RECORD = "-"
"""How the images of stages 1-3 record a setting that did not apply (the record's format)."""


def face_options_record(values: Mapping[str, Any]) -> str:
    """Stage 2's options as the images' record writes them: ``no`` (``faces: no``), else e.g.
    ``hog,upsample=0,center=no,max=all``."""
    if not values["faces"]:
        return "no"
    max_faces = values["max_faces"]
    return (f"{values['face_detector']},upsample={values['face_upsample']},"
            f"center={'yes' if values['only_center_face'] else 'no'},"
            f"max={'all' if max_faces is None else max_faces}")


BACKEND = Setting("backend", choice("pretrained", "classical"), recorded_as=None)
"""The backend of the task's checkpoint group (:mod:`oldphoto.plan.backend`)."""
MODE_SETTING = Setting("mode", MODE)
"""The photo's configured mode: ``with_scratch`` and ``hr`` (``auto`` counts as the scratch
mode: its detector runs; :attr:`oldphoto.plan.PhotoPlan.triage` says the triage decides)."""
TEST_MODE = Setting("test_mode", choice("Full", "Scale", "Crop"), optional=True)
"""The quality path's geometry (official networks only)."""
STAGE1_STRETCH = Setting("stage1_stretch", choice("official", "clamp"), optional=True,
                         recorded_as="stretch")
"""How stage 1 maps the network's output to 8 bits (official networks only)."""
FACE_NETWORK = Setting("face_network", TEXT, optional=True)
"""The face checkpoint of the photo's mode (official networks only)."""
PREVIEW_WIDTH = Setting("preview_width", INT, recorded_as=None)
FACE_OPTIONS = (
    Setting("face_size", INT),
    Setting("landmarks", TEXT, optional=True),  # None: not installed (a run needing it is refused)
    Setting("faces", BOOL, recorded_as=None),
    Setting("face_detector", choice("hog", "cnn"), optional=True, recorded_as=None),
    Setting("face_upsample", INT, optional=True, recorded_as=None),
    Setting("only_center_face", BOOL, optional=True, recorded_as=None),
    Setting("max_faces", INT, optional=True, recorded_as=None),  # None: every face
)
"""Stage 2: the face options apply only with ``faces: true`` (None otherwise)."""

TASKS: dict[str, Task] = {task.name: task for task in (
    Task("detect_scratches", (BACKEND, PREVIEW_WIDTH), device=True),
    Task("triage_scratches", (BACKEND,)),
    Task("restore_global", (
        BACKEND, MODE_SETTING, TEST_MODE, STAGE1_STRETCH,
        # with_scratch: auto: stage 1 reads the triage decision (an input) and takes its path
        Setting("triage", BOOL, record=lambda value: "auto" if value else "-"),
    ), device=True),
    Task("detect_faces", FACE_OPTIONS, records={"faces": face_options_record}),
    Task("enhance_face", (BACKEND, FACE_NETWORK._replace(recorded_as="network")), device=True),
    Task("detect_and_enhance_faces",
         FACE_OPTIONS + (BACKEND, FACE_NETWORK._replace(recorded_as="network")),
         device=True, records={"faces": face_options_record}),
    Task("blend_faces", (
        # the backend label of both groups, e.g. global=pretrained,face=classical
        Setting("backend", TEXT, recorded_as=None),
        Setting("face_blending", choice("official", "adaptive"), recorded_as="blending"),
        Setting("final_size", choice("original", "official")),
        # what shaped the photo upstream too: recorded in its provenance
        MODE_SETTING, TEST_MODE, STAGE1_STRETCH, FACE_NETWORK,
        Setting("output_format", choice("png", "tiff", "jpeg", "same")),
        Setting("tone", choice("keep", "official")),
        Setting("jpeg_quality", INT),
        Setting("carry_metadata", BOOL),
        # the report's views
        PREVIEW_WIDTH,
        Setting("change_map_width", INT, recorded_as=None),
        Setting("benchmarks", TEXT, recorded_as=None),
    )),
    Task("prepare_checkpoint", (Setting("name", TEXT),), in_process=True),
    Task("download_checkpoints", (Setting("checkpoints_dir", TEXT),), in_process=True),
)}
"""Every task, its settings, and whether it needs a device (:mod:`oldphoto.jobs.tasks` holds
the functions, one per task)."""

NETWORK_TASKS = frozenset(name for name, task in TASKS.items() if task.device)
"""The tasks that may run a network: they take a device (and a GPU slot)."""


# ---------------------------------------------------------------------------------------------
# The plan's end: writing a job's command line


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


def job_command(src_dir: str | Path, python: str | None = None) -> str:
    """The shell prefix of every job: this checkout's library on ``PYTHONPATH``, then the entry
    point.  ``python``: the interpreter (default: Snakemake's own; ``python`` in a conda env)."""
    python = python or sys.executable
    return (f"PYTHONPATH={_quote(str(src_dir))}${{PYTHONPATH:+:$PYTHONPATH}} "
            f"{_quote(python)} -m {ENTRY_MODULE}")


def file_arguments(inputs: Any, outputs: Any) -> str:
    """``in.NAME=PATH``/``out.NAME=PATH`` arguments (shell-quoted) of a job's named files."""
    parts = []
    for prefix, files in (("in", inputs), ("out", outputs)):
        for name, value in files.items():
            if isinstance(value, (list, tuple)):
                parts += [f"{prefix}.{name}[]={_quote(str(v))}" for v in value]
            else:
                parts.append(f"{prefix}.{name}={_quote(str(value))}")
    return " ".join(parts)


def setting_arguments(task: str, values: Mapping[str, Any]) -> str:
    """A task's settings as ``NAME=VALUE`` arguments (shell-quoted, in the declared order; a
    ``None`` of an optional setting is left out).

    Raises:
        KeyError: an unknown task, a setting the task does not declare, or a missing one.
        ValueError: a value of the wrong type, or None for a setting that always applies.
    """
    declared = TASKS[task]
    unknown = sorted(set(values) - {s.name for s in declared.settings})
    if unknown:
        raise KeyError(f"task {task!r} has no setting(s) {', '.join(unknown)}")
    parts = []
    for setting in declared.settings:
        value = values[setting.name]
        if value is None:
            if not setting.optional:
                raise ValueError(f"{task}: setting {setting.name!r} always applies; got None")
            continue
        try:
            parts.append(f"{setting.name}={_quote(setting.kind.text(value))}")
        except ValueError as err:
            raise ValueError(f"{task}: setting {setting.name!r}: {err}") from None
    return " ".join(parts)


def image_argument(image: str) -> str:
    return f"image={_quote(str(image))}"


# ---------------------------------------------------------------------------------------------
# The job's end: reading it back


def parse_command_line(argv: list[str], environ: Mapping[str, str] | None = None
                       ) -> dict[str, Any]:
    """``TASK ARGUMENTS`` -> a job request: ``{"task", "rule", "image", "log", "inputs",
    "outputs", "params", "scheduling"}``.  ``params`` keeps each setting's text (the worker's
    job reads them typed: :func:`read_settings`); ``scheduling`` is :func:`read_scheduling` of
    ``environ`` (default: this process's) with the job's ``threads``.

    Raises:
        SystemExit: no task, an argument that is not ``key=value``, an unknown framework key.
    """
    if not argv:
        raise SystemExit(f"usage: python -m {ENTRY_MODULE} TASK key=value ...")
    request: dict[str, Any] = {"task": argv[0], "inputs": {}, "outputs": {}, "params": {}}
    threads = 1
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep:
            raise SystemExit(f"{ENTRY_MODULE}: expected key=value, got {arg!r}")
        if key.startswith(("in.", "out.")):
            where, name = key.split(".", 1)
            target = request["inputs" if where == "in" else "outputs"]
            if name.endswith("[]"):
                target.setdefault(name[:-2], []).append(value)
            else:
                target[name] = value
        elif key == "threads":
            threads = int(value)
        elif key in FRAMEWORK_ARGUMENTS:
            request[key] = value
        elif "." in key:
            raise SystemExit(f"{ENTRY_MODULE}: unknown argument {key!r}")
        else:
            request["params"][key] = value
    request["scheduling"] = dict(read_scheduling(os.environ if environ is None else environ),
                                 threads=threads)
    return request


def read_settings(task: str, params: Mapping[str, str]) -> dict[str, Any]:
    """A job's settings, typed, from their texts (:func:`parse_command_line`): every declared
    setting, ``None`` for an optional one left out.

    Raises:
        KeyError: an unknown task.
        ValueError: an undeclared setting, a missing one, or a text that is not of its type.
    """
    declared = TASKS[task]
    unknown = sorted(set(params) - {s.name for s in declared.settings})
    if unknown:
        raise ValueError(f"{task}: unknown setting(s) {', '.join(unknown)}")
    values: dict[str, Any] = {}
    for setting in declared.settings:
        text = params.get(setting.name)
        if text is None:
            if not setting.optional:
                raise ValueError(f"{task}: setting {setting.name!r} is missing")
            values[setting.name] = None
            continue
        try:
            values[setting.name] = setting.kind.parse(text)
        except ValueError as err:
            raise ValueError(f"{task}: setting {setting.name!r}: {err}") from None
    return values


def recorded(task: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """The settings a task's outputs record, typed, under their record names (the final
    output's provenance settings: :func:`oldphoto.archival.settings.recorded_settings`)."""
    return {setting.record_name: values[setting.name] for setting in TASKS[task].settings
            if setting.record_name is not None}


def image_record(task: str, values: Mapping[str, Any]) -> dict[str, str]:
    """What the images of stages 1-3 record of the settings that shaped them, as the text the
    record's format has always had (``-`` for a setting that did not apply)."""
    declared = TASKS[task]
    record: dict[str, str] = {}
    for setting in declared.settings:
        if setting.record_name is None:
            continue
        value = values[setting.name]
        if setting.record is not None:
            record[setting.record_name] = setting.record(value)
        else:
            record[setting.record_name] = (NOT_APPLICABLE_RECORD if value is None
                                           else setting.kind.record(value))
    for name, make in declared.records.items():
        record[name] = make(values)
    return record


# ---------------------------------------------------------------------------------------------
# The environment: scheduling settings and what a worker is pinned to


class EnvSetting(NamedTuple):
    """A scheduling setting: the config key, the variable jobs read it from, its type, and the
    value without the variable (``None``: the library's own default)."""

    key: str
    variable: str
    parse: Callable[[str], Any]
    default: Any


def _parse_switch(text: str) -> bool:
    """``OLDPHOTO_WORKERS``: ``0``/``false``/``no``/``off`` (any case) turn it off."""
    return text.strip().lower() not in ("0", "false", "no", "off")


SCHEDULING: tuple[EnvSetting, ...] = (
    EnvSetting("device", "OLDPHOTO_DEVICE", str, "auto"),
    EnvSetting("jobs_per_gpu", "OLDPHOTO_JOBS_PER_GPU", int, 1),
    EnvSetting("max_image_pixels", "OLDPHOTO_MAX_IMAGE_PIXELS", int, None),
    EnvSetting("memory_budget_mb", "OLDPHOTO_MEMORY_BUDGET_MB", int, None),
    EnvSetting("worker_idle_seconds", "OLDPHOTO_WORKER_IDLE", float, 60.0),
    EnvSetting("workers", "OLDPHOTO_WORKERS", _parse_switch, True),
)
"""The settings that decide only where and how fast jobs run: the Snakefile puts them into the
environment (:func:`scheduling_environment`), so changing them reruns nothing."""

RUN_KEY_ENV = "OLDPHOTO_RUN_KEY"
"""The run's key (its absolute output folder): the warm workers of one run share it."""

WORKER_PINNING_ENV = ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID", "OLDPHOTO_FAKE_GPUS",
                      "OLDPHOTO_GPU_LOCK_DIR", "OLDPHOTO_GPU_SLOT_TRACE")
"""Variables a warm worker is started with and pinned to (its device): a worker started with
other values is replaced (:func:`oldphoto.worker.client.submit`)."""


def run_key(config: Mapping[str, Any]) -> str:
    """The run's key: its absolute output folder (:data:`RUN_KEY_ENV`)."""
    return str(Path(config["output_dir"]).resolve())


def scheduling_environment(config: Mapping[str, Any]) -> dict[str, str]:
    """The scheduling settings of ``config`` as the environment variables jobs read, and the
    run's key."""
    env = {}
    for setting in SCHEDULING:
        if setting.key in config:
            value = config[setting.key]
            env[setting.variable] = (("1" if value else "0") if isinstance(value, bool)
                                     else str(value))
    env[RUN_KEY_ENV] = run_key(config)
    return env


def read_scheduling(environ: Mapping[str, str]) -> dict[str, Any]:
    """The scheduling settings a job runs with, typed: each from its variable, else the
    default (an empty variable counts as unset).

    Raises:
        ValueError: a variable that does not read as its type (the message names it).
    """
    values = {}
    for setting in SCHEDULING:
        text = environ.get(setting.variable)
        try:
            values[setting.key] = setting.parse(text) if text else setting.default
        except ValueError:
            raise ValueError(f"{setting.variable}={text!r}: not a valid {setting.key}") from None
    return values


# ---------------------------------------------------------------------------------------------
# How a job ended: one line in its log


FAILED_PREFIX = "FAILED "
RETRIED_PREFIX = "RETRIED "
_SEPARATOR = " :: "


def failed_line(rule: str, image: str, reason: str) -> str:
    """``FAILED <rule> <image> :: <reason>``: a job that failed, with its one-line reason."""
    return f"{FAILED_PREFIX}{rule} {image}{_SEPARATOR}{reason}"


def retried_line(rule: str, image: str, died: str) -> str:
    """``RETRIED <rule> <image> :: <how the first worker died>; retried once in a fresh
    worker``: a job whose warm worker died under it, run again."""
    return f"{RETRIED_PREFIX}{rule} {image}{_SEPARATOR}{died}; retried once in a fresh worker"


def read_outcome_line(line: str) -> tuple[str, str, str, str] | None:
    """``(kind, rule, image, reason)`` of a :func:`failed_line` (kind ``FAILED``) or a
    :func:`retried_line` (``RETRIED``); None for any other line."""
    for prefix in (FAILED_PREFIX, RETRIED_PREFIX):
        if line.startswith(prefix):
            head, _, reason = line[len(prefix):].partition(_SEPARATOR)
            rule, _, image = head.partition(" ")
            return prefix.strip(), rule, image, reason.strip()
    return None


def append_to_log(path: str | None, line: str) -> None:
    """Add ``line`` at the end of a job's log (nothing without a log)."""
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

