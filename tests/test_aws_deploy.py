"""Deployment: the template passes cfn-lint and checkov and the CLI fills in its parameters,
the zip imports the handler in a clean virtualenv, ``setup_bucket`` configures a bucket on
moto (real HTTP)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from importlib import metadata, resources
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from cfnlint.decode import cfn_yaml
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from mailspool.aws.bucket_setup import setup_bucket
from mailspool.aws.package import DEFAULT_PYTHON, build_package, dependencies
from mailspool.aws.template import default_runtime, template_text
from mailspool.cli.aws import aws as aws_cli
from mailspool.feedback import layout as feedback_layout
from mailspool.retention import DEFAULT_RETENTION, PREFIXES
from mailspool.spool import layout
from mailspool.spool.schedule import SCHEDULED
from tests.fixtures.moto_server import MotoServer

ROOT = Path(__file__).resolve().parent.parent


def _tool(name: str) -> str:
    """A linter from $CHECKOV / $CFN_LINT, beside this Python, in .venv-tools (where
    ``python3 dev.py test`` installs checkov, whose pins clash with moto's), or on PATH."""
    candidates = [
        os.environ.get(name.upper().replace("-", "_"), ""),
        str(Path(sys.executable).with_name(name)),
        str(ROOT / ".venv-tools" / name / "bin" / name),
        shutil.which(name) or "",
    ]
    found = next((c for c in candidates if c and Path(c).is_file()), None)
    assert found is not None, f"{name} is not installed: run the tests with 'python3 dev.py test'"
    return found


def _printed(*args: str) -> str:
    result = CliRunner().invoke(aws_cli, ["template", *args])
    assert result.exit_code == 0, result.output
    return result.output


def _decoded(*args: str) -> dict[str, Any]:
    """The printed template as CloudFormation reads it (cfn-lint's loader: !Sub, !Ref...)."""
    decoded: dict[str, Any] = cfn_yaml.loads(_printed(*args))
    return decoded


def _sub(value: Any, template: dict[str, Any]) -> Any:
    """``{"Fn::Sub": "..."}`` with the parameters' Defaults put in, as a deployment would."""
    text = value["Fn::Sub"]
    for name, parameter in template["Parameters"].items():
        if "Default" in parameter:
            text = text.replace("${" + name + "}", str(parameter["Default"]))
    return text


@pytest.fixture(scope="module")
def template_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = CliRunner().invoke(
        aws_cli,
        ["template", "--bucket", "my-mail", "--prefix", "spool", "--sender", "a@example.com"],
    )
    assert result.exit_code == 0, result.output
    path = tmp_path_factory.mktemp("template") / "mailspool.yaml"
    path.write_text(result.output)
    return path


def test_the_template_passes_cfn_lint(template_file: Path) -> None:
    tool = _tool("cfn-lint")
    result = subprocess.run([tool, str(template_file)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_template_passes_checkov_with_every_skip_justified(template_file: Path) -> None:
    tool = _tool("checkov")
    result = subprocess.run(
        [
            tool,
            "--skip-download",
            "-f",
            str(template_file),
            "--framework",
            "cloudformation",
            "--compact",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Failed checks: 0" in result.stdout
    for resource in _decoded("--bucket", "b")["Resources"].values():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV_")
            assert len(skip["comment"]) > 20


def test_the_lifecycle_expires_what_retention_names_only() -> None:
    template = _decoded("--prefix", "spool")
    bucket = template["Resources"]["Bucket"]["Properties"]
    rules = bucket["LifecycleConfiguration"]["Rules"]
    prefixes = {_sub(r["Prefix"], template) for r in rules}
    expiring = {folder for folders in PREFIXES.values() for folder in folders}
    assert prefixes == {f"spool/{folder}" for folder in expiring | {".leases/", ""}}
    [versions] = [r for r in rules if "ExpirationInDays" not in r]  # the whole prefix's
    assert versions["NoncurrentVersionExpiration"] == {"NoncurrentDays": 1}
    assert {layout.DONE, layout.LEDGER, layout.FAILED} < expiring
    assert {feedback_layout.MESSAGE_EVENTS, feedback_layout.HISTORY} < expiring
    assert not expiring & {layout.QUEUE, SCHEDULED, layout.PAUSED, layout.QUARANTINE}
    defaults = template["Parameters"]
    days = {_sub(r["Prefix"], template): r.get("ExpirationInDays") for r in rules}
    for state, folders in PREFIXES.items():
        age = DEFAULT_RETENTION.of(state)
        for folder in folders:
            parameter = days[f"spool/{folder}"]["Ref"]
            assert age == defaults[parameter]["Default"] * 86400
    rules = bucket["NotificationConfiguration"]["QueueConfigurations"][0]["Filter"]["S3Key"][
        "Rules"
    ]
    assert [{**r, "Value": _sub(r["Value"], template)} for r in rules[:1]] + rules[1:] == [
        {"Name": "prefix", "Value": f"spool/{layout.QUEUE}"},
        {"Name": "suffix", "Value": ".json"},
    ]


def test_the_template_prints_as_packaged_without_options() -> None:
    packaged = resources.files("mailspool.aws").joinpath("template.yaml").read_text("utf-8")
    assert _printed() == packaged
    assert packaged == (ROOT / "src" / "mailspool" / "aws" / "template.yaml").read_text("utf-8")


def test_values_given_change_only_their_default_lines() -> None:
    before = _printed().splitlines()
    after = _printed("--bucket", "my-mail", "--prefix", "/spool/", "--set", "CodeBucket=deploy")
    changed = [line for line in after.splitlines() if line not in before]
    assert changed == [
        '    Default: "my-mail"',
        '    Default: "spool/"',
        '    Default: "deploy"',
    ]
    assert len(after.splitlines()) == len(before) + 2  # BucketName and CodeBucket had none


def test_the_role_is_scoped_to_the_prefix_and_keeps_every_permission() -> None:
    template = _decoded("--prefix", "spool")
    [policy] = template["Resources"]["FunctionRole"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"] if "Sid" in s}
    assert list(statements) == [
        "StoreObjects",
        "ListStore",
        "SendThroughSes",
        "ReadSendQuota",
        "ConsumeNotifications",
        "DeadLetters",
        "Logs",
    ]  # BucketKey and SealFiles only with their KMS key parameters
    objects = _sub(statements["StoreObjects"]["Resource"], template)
    assert objects == "arn:${AWS::Partition}:s3:::${BucketName}/spool/*"
    listing = statements["ListStore"]["Condition"]["StringLikeIfExists"]["s3:prefix"]
    assert [_sub(p, template) for p in listing] == ["spool/*"]
    assert statements["StoreObjects"]["Action"] == [
        "s3:GetObject",
        "s3:PutObject",
        "s3:DeleteObject",
    ]


def test_parameters_file_lists_the_values_for_deploy() -> None:
    printed = _printed("--parameters", "--sender", "Site <a@example.com>", "--prefix", "spool")
    assert json.loads(printed) == [
        {"ParameterKey": "Prefix", "ParameterValue": "spool/"},
        {"ParameterKey": "Sender", "ParameterValue": "Site <a@example.com>"},
    ]


@given(st.text(st.characters(codec="utf-8").filter(str.isprintable)))
def test_any_printable_value_reads_back_as_given(value: str) -> None:
    assert _decoded("--sender", value)["Parameters"]["Sender"]["Default"] == value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "Nope=1"], "the template has no parameter Nope; it has BucketName"),
        (["--sender", "a\nb"], "parameter Sender: 'a\\nb' holds a control or line-break"),
        (["--set", "Sender"], "--set 'Sender': expected NAME=VALUE"),
        (["--sender", "a", "--set", "Sender=b"], "Sender is given twice"),
    ],
)
def test_wrong_values_are_refused_by_name(args: list[str], message: str) -> None:
    result = CliRunner().invoke(aws_cli, ["template", *args])
    assert result.exit_code != 0
    assert message in result.output


@pytest.mark.slow
def test_the_zip_imports_the_handler_in_a_clean_virtualenv(tmp_path: Path) -> None:
    archive = build_package(tmp_path / "function.zip", platform="native")
    unpacked = tmp_path / "task"
    with zipfile.ZipFile(archive) as zipped:
        zipped.extractall(unpacked)
    venv.EnvBuilder(system_site_packages=False, with_pip=False).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    code = (
        f"import sys; sys.path.insert(0, {str(unpacked)!r}); import mailspool.aws, boto3; "
        "print(mailspool.aws.handler.__module__, mailspool.aws.sweeper_handler.__name__)"
    )
    result = subprocess.run(
        [str(python), "-I", "-c", code], capture_output=True, text=True, check=False, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["mailspool.aws.lambda_handler", "sweeper_handler"]


def test_setup_configures_an_existing_bucket_and_is_idempotent(aws: MotoServer) -> None:
    s3, sqs = boto3.client("s3"), boto3.client("sqs")
    s3.create_bucket(Bucket="existing")
    url = sqs.create_queue(QueueName="events")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    for _ in range(2):
        result = CliRunner().invoke(
            aws_cli, ["setup", "--bucket", "existing", "--prefix", "spool", "--queue-arn", arn]
        )
        assert result.exit_code == 0, result.output
    encryption = s3.get_bucket_encryption(Bucket="existing")["ServerSideEncryptionConfiguration"]
    assert encryption["Rules"][0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    block = s3.get_public_access_block(Bucket="existing")["PublicAccessBlockConfiguration"]
    assert all(block.values())
    assert len(block) == 4
    rules = s3.get_bucket_lifecycle_configuration(Bucket="existing")["Rules"]
    assert sorted(r["Filter"]["Prefix"] for r in rules) == sorted(
        f"spool/{folder}" for folders in [*PREFIXES.values(), (".leases/",)] for folder in folders
    )
    assert {r["Filter"]["Prefix"]: r["Expiration"]["Days"] for r in rules}["spool/failed/"] == 90
    [notification] = s3.get_bucket_notification_configuration(Bucket="existing")[
        "QueueConfigurations"
    ]
    assert notification["QueueArn"] == arn
    sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)  # S3's test event
    s3.put_object(Bucket="existing", Key="spool/queue/a.json", Body=b"{}")
    s3.put_object(Bucket="existing", Key="spool/done/a.json", Body=b"{}")
    bodies = [
        m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10)["Messages"]
    ]
    assert len(bodies) == 1
    assert "spool%2Fqueue%2Fa.json" in bodies[0].replace("/", "%2F")


def test_setup_refuses_two_targets(aws: MotoServer) -> None:
    with pytest.raises(ValueError, match="not both"):
        setup_bucket("b", function_arn="arn:f", queue_arn="arn:q", client=object())


def test_setup_on_a_missing_bucket_says_what_to_create(aws: MotoServer) -> None:
    result = CliRunner().invoke(aws_cli, ["setup", "--bucket", "nowhere"])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "Error: bucket nowhere does not exist: create it (aws s3 mb s3://nowhere), "
        "or let the stack create it (mailspool aws template)"
    ]


def test_access_denied_names_the_action_to_allow() -> None:
    """A stub for a fault moto's server does not produce (it enforces no IAM policy):
    an AccessDenied answer to one call."""

    class Denying:
        def put_bucket_encryption(self, **kwargs: Any) -> None:
            error = {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}
            raise ClientError(error, "PutBucketEncryption")  # type: ignore[arg-type]

    with pytest.raises(ValueError, match="access denied") as raised:
        setup_bucket("mine", client=Denying())
    assert str(raised.value) == (
        "access denied to PutBucketEncryption on bucket mine: allow "
        "s3:PutEncryptionConfiguration on arn:aws:s3:::mine to this identity"
    )


def test_package_dependencies_are_mailspools_own() -> None:
    # the webhook signer rides in every zip; an install made before the extra has none
    declared = " ".join(metadata.requires("mailspool") or [])
    webhooks = ["standardwebhooks"] if 'extra == "webhooks"' in declared else []
    assert [r.split(">")[0] for r in dependencies(boto3=True)] == [
        "click",
        "orjson",
        "email-validator",
        "idna",
        "boto3",
        *webhooks,
        "cryptography",
    ]
    assert "boto3" not in " ".join(dependencies(boto3=False))


def test_the_packaged_python_and_the_template_runtime_move_together() -> None:
    assert DEFAULT_PYTHON == default_runtime().removeprefix("python") == "3.11"
    assert "Default: python3.11" in template_text()
