"""``fedkd``: simulate, compare, fetch data — a thin layer over :mod:`fedkd.api`.

An error that is the user's (config, data, paths, arguments) is one line naming the bad
value, exit code 2, no traceback (``fedkd --debug …`` shows it).  Ctrl-C stops a run
within seconds, keeps what it had under ``<output-dir>/incomplete/``, and exits 130.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from fedkd.config import ConfigValue, parse_run_config, text_override
from fedkd.interrupt import RunFailed, RunInterrupted

app = typer.Typer(help="Federated knowledge distillation on Flower.", no_args_is_help=True)
data_app = typer.Typer(help="Datasets that are not embedded.", no_args_is_help=True)
app.add_typer(data_app, name="data")
ledger_app = typer.Typer(help="A node's privacy ledger.", no_args_is_help=True)
app.add_typer(ledger_app, name="ledger")
node_app = typer.Typer(help="A node's own configuration and data.", no_args_is_help=True)
app.add_typer(node_app, name="node")
deploy_app = typer.Typer(
    help="The coordinating site's register of hospitals (names and public keys).",
    no_args_is_help=True,
)
app.add_typer(deploy_app, name="deploy")
certs_app = typer.Typer(
    help="Certificates and keys for a deployment (no openssl needed).", no_args_is_help=True
)
app.add_typer(certs_app, name="certs")
console = Console()
errors = Console(stderr=True)
USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130
_debug = {"on": False}

P = ParamSpec("P")
R = TypeVar("R")

SetOption = Annotated[
    list[str] | None, typer.Option("--set", "-s", help="Override a config key: key=value")
]
OverwriteOption = Annotated[
    bool, typer.Option(help="Replace an existing run of the same name (its results only)")
]


@app.callback()
def _options(
    debug: Annotated[bool, typer.Option(help="Show tracebacks for user errors")] = False,
) -> None:
    _debug["on"] = debug
    _show_fedkd_logs(logging.DEBUG if debug else logging.INFO)


def _show_fedkd_logs(level: int) -> None:
    """fedkd's own log lines (exclusions, refusals, where results went) reach the user on
    stderr; other libraries' loggers are left as they are."""
    logger = logging.getLogger("fedkd")
    logger.setLevel(level)
    if not any(getattr(h, "fedkd_cli", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        handler.fedkd_cli = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """One line and exit 2 for the user's errors; exit 130 for Ctrl-C."""

    @functools.wraps(command)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except (ValueError, OSError) as exc:
            if _debug["on"]:
                raise
            errors.print(
                f"[red]error:[/] {escape(_one_line(exc))}", soft_wrap=True, highlight=False
            )
            raise typer.Exit(USER_ERROR_EXIT) from None
        except (RunInterrupted, KeyboardInterrupt) as exc:
            errors.print(f"[yellow]stopped:[/] {escape(str(exc) or 'interrupted')}", soft_wrap=True)
            raise typer.Exit(INTERRUPTED_EXIT) from None
        except RunFailed as exc:
            errors.print(f"[red]run failed:[/] {escape(str(exc))}", soft_wrap=True, highlight=False)
            raise typer.Exit(1) from None

    return wrapped


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    if isinstance(exc, OSError) and exc.filename and str(exc.filename) not in text:
        text = f"{text} ({exc.filename})"
    return text or type(exc).__name__


def _overrides(items: list[str] | None) -> dict[str, ConfigValue]:
    """``--set`` values, typed as their keys want (text from a command line)."""
    return dict(text_override(item) for item in items or [])


@app.command()
@user_errors
def simulate(
    config: Annotated[Path, typer.Argument(help="Run-config TOML (see simulations/)")],
    set_: SetOption = None,
    name: Annotated[str | None, typer.Option(help="Run name (folder under output-dir)")] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Run one federated simulation on Flower's simulation engine."""
    from fedkd.api import simulate as run

    overrides: dict[str, Any] = _overrides(set_)
    if name:
        overrides["run-name"] = name
    if overwrite:
        overrides["overwrite"] = True
    result = run(config, **_python_keys(overrides))
    alma, global_acc = result.summary["alma"], result.summary["global_acc"]
    console.print(
        f"[green]done[/] {result.config.strategy}: ALMA {_fmt(alma)} "
        f"(median {_fmt(result.summary['alma_median'])}), global {_fmt(global_acc)}, "
        f"{result.summary['wall_s']:.1f} s → {result.run_dir}"
    )
    too_few = result.summary.get("alma_too_few_clients") or []
    if too_few:
        console.print(
            f"{len(too_few)} node(s) hold fewer than min-local-test "
            f"{result.summary['alma_min_local_test']} own test records (their accuracy has a "
            "wide interval: summary.json); ALMA over the rest "
            f"{_fmt(result.summary['alma_at_min'])}"
        )


def _python_keys(overrides: dict[str, Any]) -> dict[str, Any]:
    """Config keys as the API's keyword arguments (``num-clients`` → ``num_clients``)."""
    return {key.replace("-", "_"): value for key, value in overrides.items()}


def _fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.4f}"


@app.command()
@user_errors
def compare(
    config: Annotated[Path, typer.Argument(help="Run-config TOML (see simulations/)")],
    strategies: Annotated[
        str,
        typer.Option(
            help="Comma-separated strategies; a variant adds its parameters after '+', "
            "e.g. knfu+include-self=false+top-m=3"
        ),
    ] = "local,mean,dsfl,knfu,fedavg",
    seeds: Annotated[str, typer.Option(help="Comma-separated seeds")] = "0",
    set_: SetOption = None,
    name: Annotated[str | None, typer.Option(help="Comparison name")] = None,
    reuse: Annotated[
        bool, typer.Option(help="Keep complete runs whose resolved config is identical")
    ] = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Run several strategies on identical partitions and seeds; write a comparison."""
    from fedkd.api import compare as run

    overrides: dict[str, Any] = _overrides(set_)
    if overwrite:
        overrides["overwrite"] = True
    result = run(config, strategies, seeds, name=name, reuse=reuse, **_python_keys(overrides))
    console.print(result.table)
    console.print(f"[green]comparison written to[/] {result.out_dir}")


@app.command("audit")
@user_errors
def audit_command(
    config: Annotated[Path, typer.Argument(help="Run-config TOML (see simulations/)")],
    compare_: Annotated[
        str,
        typer.Option(
            "--compare",
            help="Configurations: presets plain, swing, dp joined by '+' (swing+dp), "
            "with key=value overrides (dp+dp-target-epsilon=1)",
        ),
    ] = "plain",
    set_: SetOption = None,
    name: Annotated[str, typer.Option(help="Audit folder under output-dir")] = "audit",
    target: Annotated[int, typer.Option(help="The node whose data holds the canaries")] = 0,
    peer: Annotated[int, typer.Option(help="The hospital whose model is the peer view")] = 1,
    kinds: Annotated[str, typer.Option(help="Canary kinds: ood, mislabelled")] = "ood,mislabelled",
    candidates: Annotated[
        int, typer.Option(help="½-inclusion canaries per kind (0: as many as the share allows)")
    ] = 0,
    references: Annotated[int, typer.Option(help="Never-inserted canaries per kind")] = 1000,
    repeats: Annotated[int, typer.Option(help="Copies of each inserted canary")] = 1,
    audit_seed: Annotated[int, typer.Option(help="Seed of the canaries and coins")] = 0,
    control: Annotated[
        str, typer.Option(help="negative (insert nothing) or positive (DP noise off)")
    ] = "",
    shadows: Annotated[
        int, typer.Option(help="Shadow runs for LiRA and Clopper-Pearson (0: neither)")
    ] = 0,
    canary_share: Annotated[
        float, typer.Option(help="Inserted canary rows at most this share of the target's records")
    ] = 0.1,
    unaudited: Annotated[
        bool, typer.Option(help="Also run each configuration without canaries (accuracy)")
    ] = True,
    report: Annotated[bool, typer.Option(help="Also write a self-contained report.html")] = False,
    overwrite: OverwriteOption = False,
) -> None:
    """Audit privacy: insert canaries into one node's data, run the configurations on
    identical data and seeds, measure exposure, membership inference and a one-run ε
    lower bound per attacker view, and judge each claim: consistent (exit 0), violated
    (BROKEN, exit 3), not testable at this size (exit 4), invalid (exit 5)."""
    from fedkd.api import load_config
    from fedkd.audit.run import AuditSettings, audit
    from fedkd.run_directory import check_free

    overrides: dict[str, Any] = _overrides(set_)
    settings = AuditSettings(
        target=target,
        peer=peer,
        kinds=tuple(k.strip() for k in kinds.split(",") if k.strip()),
        candidates=candidates,
        references=references,
        repeats=repeats,
        seed=audit_seed,
        control=control,
        shadows=shadows,
        canary_share=canary_share,
        unaudited=unaudited,
    )
    configurations = [c.strip() for c in compare_.split(",") if c.strip()]
    base, _ = load_config(config, overrides)
    out = check_free(Path(base.output_dir).expanduser().resolve(), name, overwrite=overwrite)
    outcome = audit(
        config,
        configurations,
        settings,
        out,
        overrides=overrides,
        progress=lambda line: errors.rule(line),
        report=report,
    )
    typer.echo(outcome.markdown_path.read_text())
    console.print(f"[green]audit written to[/] {outcome.json_path}")
    if outcome.report_path is not None:
        console.print(f"[green]report:[/] {outcome.report_path}")
    _audit_verdicts(outcome.record, outcome.markdown_path)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


def _audit_verdicts(record: dict[str, Any], markdown: Path) -> None:
    """One line per configuration on stderr, the control first, BROKEN loudest."""
    from rich.markup import escape

    from fedkd.audit.wording import VERDICT_HEADINGS, control_words, ordered, verdict_words

    if record.get("control"):
        errors.print(f"[bold yellow]{control_words(record['control'])}[/]", soft_wrap=True)
    styles = {"violated": "bold red", "invalid": "bold red", "not testable at this size": "yellow"}
    for name, config in ordered(record):
        style = styles.get(config["verdict"], "green")
        errors.print(
            f"[{style}]{name}: {VERDICT_HEADINGS[config['verdict']]}[/] — "
            f"{escape(verdict_words(config))}",
            soft_wrap=True,
            markup=True,
            highlight=False,
        )
    if record["broken_guarantees"]:
        errors.print(
            f"[bold red]BROKEN PRIVACY GUARANTEE[/]: an ε lower bound exceeds the claimed ε "
            f"in {record['broken_guarantees']}; see {markdown}",
            soft_wrap=True,
        )


@app.command("report")
@user_errors
def report_command(
    run_dir: Annotated[
        Path | None, typer.Argument(help="A run folder (the coordinating site's report)")
    ] = None,
    node: Annotated[
        Path | None, typer.Option(help="A node's state dir: its own report, from its ledgers")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Write here (default: beside the data)")] = None,
) -> None:
    """Write a privacy model card (privacy-report.md and .json) for a run, or for a node
    from its own verified ledgers without asking the server."""
    from fedkd.reporting.privacy_card import node_card, run_card, write_card

    if (run_dir is None) == (node is None):
        raise typer.BadParameter("give a RUN_DIR or --node STATE_DIR (one of them)")
    if node is not None:
        if not node.is_dir():
            raise FileNotFoundError(f"no node state dir at {node}")
        card, where = node_card(node), out or node
    else:
        assert run_dir is not None
        if not (run_dir / "summary.json").is_file():
            raise FileNotFoundError(f"{run_dir} is not a run folder (no summary.json)")
        card, where = run_card(run_dir), out or run_dir
    json_path, md_path = write_card(card, where)
    typer.echo(md_path.read_text())
    console.print(f"[green]privacy report:[/] {md_path} and {json_path.name}")


PASSPHRASE_ENV = "FEDKD_CA_PASSPHRASE"
PassphraseFile = Annotated[
    Path | None,
    typer.Option(help=f"File holding the CA passphrase (else ${PASSPHRASE_ENV}, else asked)"),
]
ForceOption = Annotated[bool, typer.Option(help="Replace existing keys (the old ones are lost)")]


def _passphrase(path: Path | None, *, confirm: bool) -> bytes:
    import os

    if path is not None:
        return path.read_text().strip().encode()
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV].encode()
    return str(typer.prompt("CA passphrase", hide_input=True, confirmation_prompt=confirm)).encode()


@certs_app.command("ca")
@user_errors
def certs_ca(
    out: Annotated[Path, typer.Option(help="Folder for ca.crt and ca.key")],
    passphrase_file: PassphraseFile = None,
    days: Annotated[int, typer.Option(help="Validity in days")] = 3650,
    force: ForceOption = False,
) -> None:
    """The coordinating site's CA: ca.crt, and ca.key encrypted with a passphrase."""
    from fedkd.deploy.certs import make_ca

    issued = make_ca(
        out, passphrase=_passphrase(passphrase_file, confirm=True), days=days, force=force
    )
    console.print(f"CA {issued.certificate} (key {issued.private_key}, 0600, encrypted)")
    console.print(f"expires {issued.not_after:%Y-%m-%d %H:%M} UTC")


@certs_app.command("server")
@user_errors
def certs_server(
    ca: Annotated[Path, typer.Option(help="Folder with ca.crt and ca.key")],
    out: Annotated[Path, typer.Option(help="Folder for server.pem and server.key")],
    san: Annotated[
        list[str] | None, typer.Option(help="Name or address the SuperLink is reached at")
    ] = None,
    passphrase_file: PassphraseFile = None,
    days: Annotated[int, typer.Option(help="Validity in days")] = 825,
    force: ForceOption = False,
) -> None:
    """The SuperLink's certificate, signed by the CA (localhost, 127.0.0.1, ::1 by default)."""
    from fedkd.deploy.certs import DEFAULT_SANS, make_server_cert

    sans = tuple(san) if san else DEFAULT_SANS
    issued = make_server_cert(
        ca, out, passphrase=_passphrase(passphrase_file, confirm=False), sans=sans, days=days,
        force=force,
    )  # fmt: skip
    console.print(f"SuperLink certificate {issued.certificate} for {', '.join(sans)}")
    console.print(f"key {issued.private_key} (0600); expires {issued.not_after:%Y-%m-%d} UTC")


@certs_app.command("fingerprint")
@user_errors
def certs_fingerprint(
    certificate: Annotated[Path, typer.Argument(help="A certificate (the CA's ca.crt)")],
) -> None:
    """Print the certificate's SHA-256 fingerprint, to read out through a second channel
    and compare where the file arrives."""
    from fedkd.deploy.certs import fingerprint

    if not certificate.is_file():
        raise FileNotFoundError(f"no certificate at {certificate}")
    typer.echo(fingerprint(certificate))


@certs_app.command("node")
@user_errors
def certs_node(
    name: Annotated[str, typer.Argument(help="The hospital's node name (its identity)")],
    out: Annotated[Path, typer.Option(help="Folder for the node's keys")],
    force: ForceOption = False,
) -> None:
    """At the hospital: the node's SuperNode-authentication and reply-signing key pairs.
    Only the two .pub files leave the hospital."""
    from fedkd.deploy.certs import make_node_keys

    auth, sign = make_node_keys(out, name, force=force)
    console.print(f"SuperNode authentication: {auth.private_key} (0600), {auth.public_key}")
    console.print(f"reply signing: {sign.private_key} (0600), {sign.public_key}")
    console.print(f"send only {auth.public_key} and {sign.public_key} to the coordinating site")


RegisterFile = Annotated[
    Path, typer.Option("--register", help="The node register (TOML) the ServerApp reads")
]


@deploy_app.command("register")
@user_errors
def deploy_register(
    name: Annotated[str, typer.Argument(help="The hospital's node name: its identity")],
    auth_pub: Annotated[Path, typer.Option(help="<name>.auth.pub from the hospital")],
    sign_pub: Annotated[Path, typer.Option(help="<name>.sign.pub from the hospital")],
    register_file: RegisterFile = Path("site/nodes.toml"),
    superlink: Annotated[
        str | None, typer.Option(help="Also register the key with this SuperLink connection")
    ] = None,
) -> None:
    """Register a hospital under its name with its two public keys (and, with
    --superlink, first its authentication key with Flower's running SuperLink).  Running
    it again with the same keys changes nothing and is no error."""
    import subprocess

    from fedkd.deploy.keyring import load_auth_key, load_sign_key, register

    load_auth_key(auth_pub), load_sign_key(sign_pub)  # wrong files fail before anything
    if superlink:
        # Flower first: when the SuperLink is not up, nothing is written anywhere.
        done = subprocess.run(
            ["flwr", "supernode", "register", str(auth_pub), superlink, "--name", name],
            capture_output=True, text=True,
        )  # fmt: skip
        said = f"{done.stdout} {done.stderr}".strip()
        if done.returncode != 0 and "already in use" not in said:
            raise OSError(f"flwr supernode register failed: {said}")
        console.print(said if done.returncode == 0 else f"{name}: key already with the SuperLink",
                      markup=False)  # fmt: skip
    register(register_file, name, auth=auth_pub, sign=sign_pub)
    console.print(f"{name} registered in {register_file}")


@deploy_app.command("bundle")
@user_errors
def deploy_bundle(
    app_dir: Annotated[Path, typer.Argument(help="The app folder `flwr run` will send")] = Path(),
) -> None:
    """Print the SHA-256 of the app bundle `flwr run APP_DIR` sends: publish it, and
    hospitals pin it (bundle-sha256) after reviewing the bundle."""
    from fedkd.deploy.launcher import bundle_sha256

    if not (app_dir / "pyproject.toml").is_file():
        raise FileNotFoundError(f"{app_dir} has no pyproject.toml: not a Flower app folder")
    typer.echo(bundle_sha256(app_dir.resolve()))


@deploy_app.command("gateway")
@user_errors
def deploy_gateway(
    listen: Annotated[str, typer.Option(help="host:port on the hospital-facing interface")],
    superlink: Annotated[
        str, typer.Option(help="The SuperLink on the site's own interface: https://host:port")
    ],
    certfile: Annotated[Path, typer.Option(help="TLS certificate (fedkd certs server)")],
    keyfile: Annotated[Path, typer.Option(help="Its private key")],
    ca: Annotated[Path, typer.Option(help="The site's CA certificate (to check the SuperLink)")],
    max_payload_bytes: Annotated[
        int,
        typer.Option(
            help="The runs' max-payload-bytes: bodies beyond it (plus Flower's envelope) get 413"
        ),
    ] = 64 * 1024 * 1024,
    max_connections: Annotated[int, typer.Option(help="Open connections in all")] = 256,
    max_connections_per_client: Annotated[int, typer.Option(help="…per client address")] = 16,
    requests_per_second: Annotated[
        float, typer.Option(help="Per client address (bursts of three seconds' worth)")
    ] = 20.0,
    access_log: Annotated[
        Path | None, typer.Option(help="Also write the access log here (0600)")
    ] = None,
) -> None:
    """Expose only the SuperLink's Fleet API to hospitals; the Control API (registering
    nodes, submitting runs) stays on the site's own interface.  Connections, request
    rate, body size and header/body time are bounded before anything is forwarded."""
    from fedkd.deploy.gateway import serve_gateway
    from fedkd.deploy.gateway_limits import GatewayLimits, body_limit_for

    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"--listen must be host:port, got {listen!r}")
    if not superlink.startswith("https://"):
        raise ValueError(f"--superlink must be an https:// address, got {superlink!r}")
    for path in (certfile, keyfile, ca):
        if not path.is_file():
            raise FileNotFoundError(f"no file at {path}")
    console.print(f"Fleet API only: {listen} → {superlink}/v1/fleet/", soft_wrap=True)
    limits = GatewayLimits(
        max_body_bytes=body_limit_for(max_payload_bytes),
        max_connections=max_connections,
        max_connections_per_client=max_connections_per_client,
        requests_per_second_per_client=requests_per_second,
        request_burst_per_client=max(1, round(3 * requests_per_second)),
    )
    serve_gateway(
        listen_host=host.strip("[]"), listen_port=int(port), upstream=superlink,
        certfile=certfile, keyfile=keyfile, ca_certificate=ca, limits=limits,
        access_log_file=access_log,
    )  # fmt: skip


@deploy_app.command("rotate")
@user_errors
def deploy_rotate(
    name: Annotated[str, typer.Argument(help="The registered node name (kept)")],
    sign_pub: Annotated[Path | None, typer.Option(help="The new signing key")] = None,
    auth_pub: Annotated[Path | None, typer.Option(help="The new authentication key")] = None,
    register_file: RegisterFile = Path("site/nodes.toml"),
) -> None:
    """Replace a hospital's key(s); its name, budget and ledger head stay."""
    from fedkd.deploy.keyring import rotate

    rotate(register_file, name, sign=sign_pub, auth=auth_pub)
    console.print(f"{name}: keys rotated in {register_file}")


@deploy_app.command("revoke")
@user_errors
def deploy_revoke(
    name: Annotated[str, typer.Argument(help="The registered node name")],
    register_file: RegisterFile = Path("site/nodes.toml"),
) -> None:
    """Remove a hospital's signing key: its replies are refused from now on."""
    from fedkd.deploy.keyring import revoke

    revoke(register_file, name)
    console.print(f"{name}: signing key revoked in {register_file}")


@deploy_app.command("prune")
@user_errors
def deploy_prune(
    database: Annotated[Path, typer.Option(help="The SuperLink's --database file (SQLite)")],
    keep_hours: Annotated[
        float, typer.Option(help="Keep the payloads of runs finished less than this long ago")
    ],
    dry_run: Annotated[bool, typer.Option(help="Report what would go; change nothing")] = False,
) -> None:
    """Delete the messages and objects of runs that finished more than --keep-hours ago
    from the SuperLink's database, then VACUUM (safe beside a running SuperLink)."""
    from datetime import timedelta

    from fedkd.deploy.retention import prune_superlink

    report = prune_superlink(database, keep=timedelta(hours=keep_hours), dry_run=dry_run)
    tables = ", ".join(f"{t} {n}" for t, n in report.rows_removed.items() if n) or "nothing"
    verb = "would remove" if report.dry_run else "removed"
    console.print(
        f"{verb} the payloads of {len(report.runs_pruned)} run(s) finished before "
        f"{report.cutoff:%Y-%m-%d %H:%M} UTC: {tables} "
        f"({report.payload_bytes_removed / 2**20:.1f} MiB of payload); kept {report.runs_recent} "
        f"recent and {report.runs_unfinished} unfinished run(s)",
        markup=False,
        highlight=False,
    )
    if not report.dry_run:
        console.print(
            f"{database}: {report.bytes_before / 2**20:.1f} MiB -> "
            f"{report.bytes_after / 2**20:.1f} MiB"
            f"{' after VACUUM' if report.vacuumed else ''} in {report.seconds:.1f} s"
            f"{'' if report.checkpointed else ' (log folded in at the next checkpoint)'}",
            markup=False,
            highlight=False,
        )


@data_app.command("fetch")
@user_errors
def data_fetch(
    name: Annotated[str, typer.Argument(help="mnist or fashion-mnist")],
    data_dir: Annotated[Path | None, typer.Option(help="Default: $FEDKD_DATA")] = None,
) -> None:
    """Download a dataset's idx files, or say exactly where to put them."""
    from fedkd.data.fetch import fetch_dataset
    from fedkd.data.sources import default_data_dir

    path = fetch_dataset(
        name,
        data_dir=data_dir or default_data_dir(),
        log=lambda line: console.print(line, markup=False),
    )
    console.print(f"[green]{name} ready in[/] {path}")


@data_app.command("heart-hospitals")
@user_errors
def data_heart_hospitals(
    out: Annotated[Path, typer.Argument(help="Folder to write the example files into")],
    seed: Annotated[int, typer.Option(help="The simulation seed whose splits they hold")] = 0,
) -> None:
    """The UCI Heart Disease hospitals as four CSVs with one schema, node configs, a
    public bundle, and a simulation config that runs them."""
    from fedkd.data.heart_export import export_heart_hospitals

    written = export_heart_hospitals(out, seed=seed)
    for hospital in written.hospitals:
        console.print(f"{hospital.hospital}: {hospital.csv}  (node config {hospital.node_config})")
    console.print(f"schema {written.schema}\npublic data {written.public}")
    console.print(f"[green]run them:[/] fedkd simulate {written.simulation}")


@node_app.command("check")
@user_errors
def node_check(
    config: Annotated[Path, typer.Argument(help="The node's config TOML")],
    run: Annotated[
        Path | None, typer.Option(help="A run config naming the public data, if the node's doesn't")
    ] = None,
) -> None:
    """Validate a node before it joins: its config, policy, data and ledger.  Problems are
    printed here (on the node); nothing is sent anywhere."""
    from fedkd.api import load_config
    from fedkd.data.providers import DataValidationError
    from fedkd.node import ClientNode, parse_node_config
    from fedkd.node.config import lifetime_budget_note
    from fedkd.privacy.guard import CONTROL_MECHANISM
    from fedkd.privacy.ledger import Ledger, LedgerError

    try:
        node_cfg = parse_node_config({"config": str(config)})
        run_cfg = load_config(run)[0] if run else parse_run_config({})
        node = ClientNode(node_cfg, run_cfg.protocol(), node_id=0)
        private = node.check()
    except DataValidationError as exc:
        console.print(f"[red]{escape(node_cfg.name)}: the data cannot be used[/]")
        console.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(1) from exc
    except (ValueError, OSError) as exc:
        console.print(f"[red]node check failed:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(
        f"[green]{escape(node_cfg.name)} is ready[/]: {len(private.train)} training records, "
        f"local test {len(private.test)} own records"
        + (
            f" (fewer than min-local-test {private.min_test}: its local accuracy is reported "
            "with its 95% interval, as too few)"
            if private.too_few
            else ""
        )
        + f", data digest {private.digest[:19]}…"
    )
    # What the node pins (transfer-digest) to agree to this transfer set and no other.
    console.print(f"transfer set digest {node.transfer_digest()}", soft_wrap=True)
    policy = node_cfg.policy
    console.print(f"privacy policy: {policy.to_json()}", markup=False)
    note = lifetime_budget_note(node_cfg)
    if note:
        console.print(f"[yellow]{escape(note)}[/]")
    if node_cfg.audit_control_noise_off:
        console.print(f"[red]{CONTROL_MECHANISM}:[/] the audit's positive control (noise off)")
    if not policy.nominal_records:
        console.print(
            "[yellow]no privacy-nominal-records:[/] under DP, q and the number of steps will "
            "follow the actual record count (and reveal it to within a batch); publish a "
            "round count instead"
        )
    if node_cfg.ledger_path.exists():
        try:
            head = Ledger.open(node_cfg.ledger_path).head()
        except LedgerError as exc:
            console.print(f"[red]{escape(f'ledger {node_cfg.ledger_path}: {exc}')}[/]")
            raise typer.Exit(1) from exc
        console.print(f"ledger {node_cfg.ledger_path}: verified, head {head[:12]}…")
    else:
        console.print(f"ledger {node_cfg.ledger_path}: none yet (created on first release)")


@node_app.command("launch")
@user_errors
def node_launch(
    config: Annotated[Path, typer.Argument(help="The node's config TOML (with bundle-sha256)")],
    runtime_api_address: Annotated[
        str, typer.Option(help="The SuperNode's Runtime API (flower-supernode --port)")
    ] = "127.0.0.1:9094",
    root_certificates: Annotated[
        Path | None, typer.Option(help="CA of the Runtime API's TLS certificate, if it has one")
    ] = None,
) -> None:
    """Start this node's ClientApps for a SuperNode run with --isolation process, each only
    after its app bundle and transfer set match what the node's config pins."""
    from fedkd.deploy.launcher import serve_tasks
    from fedkd.node import parse_node_config

    node_cfg = parse_node_config({"config": str(config)})
    if not node_cfg.bundle_sha256:
        raise ValueError(f"{config} pins no bundle: set bundle-sha256 (fedkd deploy bundle)")
    console.print(
        f"{node_cfg.name}: running pinned bundles {node_cfg.bundle_sha256} from the SuperNode "
        f"at {runtime_api_address}",
        soft_wrap=True,
    )
    serve_tasks(runtime_api_address, config, root_certificates=root_certificates)


@node_app.command(
    "supernode",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def node_supernode(ctx: typer.Context) -> None:
    """Flower's ``flower-supernode`` (same options), ending with status 75 when any of its
    threads dies (its heartbeat, say), so the service manager restarts it."""
    from fedkd.flower_glue.supernode_watchdog import run_supernode

    raise typer.Exit(run_supernode(list(ctx.args)))


LedgerPath = Annotated[Path, typer.Argument(help="A node's ledger file (node-<id>.ledger.db)")]


def _open_ledger(path: Path) -> list[Any]:
    """The verified rows of the ledger at ``path``, read-only (the file is never changed)."""
    from fedkd.privacy.ledger import LedgerError, ReadOnlyLedger

    if not path.is_file():
        raise FileNotFoundError(f"no ledger at {path}")
    try:
        return ReadOnlyLedger.read(path).rows()
    except LedgerError as exc:
        console.print(f"[red]ledger failed verification:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(1) from exc


@ledger_app.command("show")
@user_errors
def ledger_show(path: LedgerPath) -> None:
    """Verify the hash chain and print every release."""
    from rich.table import Table

    rows = _open_ledger(path)
    console.print(f"{len(rows)} releases, chain verified: {path}", soft_wrap=True)
    table = Table()
    for column in ("seq", "run", "round", "mechanism", "σ", "q", "steps", "ε", "δ", "payload"):
        table.add_column(column, justify="right" if column not in ("run", "mechanism") else "left")
    for row in rows:
        table.add_row(
            str(row.seq),
            row.run_id[:12],
            str(row.round),
            row.mechanism,
            f"{row.noise_multiplier:.4g}",
            f"{row.sample_rate:.4g}",
            str(row.steps),
            "—" if row.epsilon is None else f"{row.epsilon:.4f}",
            f"{row.delta:.0e}",
            row.payload_sha256[:12],
        )
    console.print(table)
    if rows:
        console.print(f"head {rows[-1].row_hash}")


@ledger_app.command("export")
@user_errors
def ledger_export(
    path: LedgerPath,
    fmt: Annotated[str, typer.Option("--format", help="csv, json or signed")] = "csv",
    out: Annotated[Path | None, typer.Option(help="Write here instead of stdout")] = None,
    sign_key: Annotated[
        Path | None,
        typer.Option(help="The node's <name>.sign key: a signed backup (--format signed)"),
    ] = None,
    node: Annotated[
        str | None, typer.Option(help="The node's name, signed into the backup")
    ] = None,
) -> None:
    """Export every verified row, with its hashes and the fields it sent; with --sign-key
    and --node, as a backup signed by the node that `fedkd ledger restore` reads."""
    if fmt == "signed" or sign_key is not None or node is not None:
        _ledger_export_signed(path, fmt, out=out, sign_key=sign_key, node=node)
        return
    if fmt not in ("csv", "json"):
        raise typer.BadParameter(f"--format must be csv or json, got {fmt!r}")
    if out is not None and not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
    from fedkd.privacy.ledger import rows_to_csv, rows_to_json

    rows = _open_ledger(path)
    text = rows_to_csv(rows) if fmt == "csv" else rows_to_json(rows) + "\n"
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text)
        console.print(f"{len(rows)} rows written to {out}")


def _ledger_export_signed(
    path: Path, fmt: str, *, out: Path | None, sign_key: Path | None, node: str | None
) -> None:
    """``fedkd ledger export --sign-key KEY --node NAME``: the signed JSON backup."""
    import click

    explicit = click.get_current_context().get_parameter_source("fmt")
    if fmt != "signed" and explicit is not click.core.ParameterSource.DEFAULT:
        raise typer.BadParameter(
            f"--format {fmt} is not signed; --sign-key and --node write --format signed"
        )
    if sign_key is None or node is None:
        raise typer.BadParameter(
            "a signed export needs --sign-key (the node's <name>.sign) and --node (its name)"
        )
    if out is not None and not out.parent.is_dir():
        raise FileNotFoundError(f"--out {out}: folder {out.parent} does not exist")
    from fedkd.node.client_node import signing_key
    from fedkd.privacy.ledger import GENESIS
    from fedkd.privacy.ledger_export import signed_export
    from fedkd.privacy.private_files import write_owner_only

    rows = _open_ledger(path)
    document = signed_export(path, node_name=node, key=signing_key(sign_key))
    if out is None:
        typer.echo(document.decode(), nl=False)
        return
    # Through a partial file, so a backup cut short never replaces a complete one.
    partial = out.with_name(out.name + ".partial")
    write_owner_only(partial, document)  # the node's whole release history
    partial.replace(out)
    head = rows[-1].row_hash if rows else GENESIS
    console.print(f"{len(rows)} rows of {node} signed and written to {out}", soft_wrap=True)
    console.print(f"head {head}", soft_wrap=True)


@ledger_app.command("restore")
@user_errors
def ledger_restore(
    export: Annotated[Path, typer.Argument(help="A signed export (ledger export --sign-key)")],
    public_key: Annotated[Path, typer.Option(help="The node's registered <name>.sign.pub")],
    to: Annotated[Path, typer.Option(help="The node's ledger file (none, or no releases)")],
    node: Annotated[str | None, typer.Option(help="Refuse any other node's export")] = None,
) -> None:
    """Restore a lost ledger from the node's signed export: the signature is checked
    with the node's public key and the chain row by row; a ledger with releases is never
    overwritten."""
    from fedkd.deploy.keyring import load_sign_key
    from fedkd.privacy.ledger import ReadOnlyLedger
    from fedkd.privacy.ledger_export import restore_ledger

    if not export.is_file():
        raise FileNotFoundError(f"no export at {export}")
    head = restore_ledger(
        export.read_bytes(), public_key=load_sign_key(public_key), to_path=to, node_name=node
    )
    count = len(ReadOnlyLedger.read(to).rows())
    console.print(f"{count} releases restored to {to}, chain verified", soft_wrap=True)
    console.print(f"head {head}", soft_wrap=True)


@ledger_app.command("registry")
@user_errors
def ledger_registry(
    path: Annotated[Path, typer.Argument(help="The server's privacy-registry file")],
    node: Annotated[str | None, typer.Option(help="Only this node's (by name)")] = None,
) -> None:
    """Print what the server recorded of each node's ledger, run by run."""
    from rich.table import Table

    from fedkd.privacy.node_registry import NodeRegistry, RegistryError

    if not path.is_file():
        raise FileNotFoundError(f"no registry at {path}")
    try:
        observations = NodeRegistry.open(path).observations(node)
    except RegistryError as exc:
        console.print(f"[red]{escape(str(exc))}[/]", soft_wrap=True)
        raise typer.Exit(1) from exc
    table = Table()
    for column in ("node", "run", "round", "ε", "ledger head", "recorded"):
        table.add_column(column, justify="right" if column in ("round", "ε") else "left")
    for o in observations:
        eps = "—" if o.epsilon is None else f"{o.epsilon:.4f}"
        table.add_row(o.node, o.run_id[:12], str(o.round), eps, o.ledger_head[:12], o.recorded_at)
    console.print(f"{len(observations)} observations in {path}", soft_wrap=True)
    console.print(table)


if __name__ == "__main__":
    app()
