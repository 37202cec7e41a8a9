"""``mailspool aws``: the CloudFormation template, the function zip, bucket set-up."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from mailspool.aws.template import default_runtime
from mailspool.cli.common import errors as _click_errors  # one way to show an error

__all__ = ["aws"]


@click.group()
def aws() -> None:
    """Deploy mailspool on AWS: S3 + SQS + Lambda + SES (see docs/aws.md)."""


@aws.command()
@click.option("--bucket", help="BucketName: the bucket to create for batches.")
@click.option("--prefix", help="Prefix: the store's folder inside the bucket.")
@click.option("--region", "ses_region", help="SesRegion (default: the stack's region).")
@click.option("--sender", help="Sender: the From of an e-mail that has none.")
@click.option("--expire-days", type=click.IntRange(min=1), help="ExpireDays (template: 14).")
@click.option("--runtime", help="Runtime: the Lambda runtime (template: python3.11).")
@click.option("--memory", type=click.IntRange(128, 10240), help="MemorySize in MB (template: 384).")
@click.option(
    "--set",
    "assignments",
    multiple=True,
    metavar="NAME=VALUE",
    help="Any parameter by its name, e.g. --set CodeBucket=my-deploy-bucket (repeatable).",
)
@click.option(
    "--parameters",
    "as_parameters",
    is_flag=True,
    help="Print the values as a parameters file (JSON) for 'aws cloudformation deploy "
    "--parameter-overrides file://FILE' instead, and leave the template as packaged.",
)
def template(
    bucket: str | None,
    prefix: str | None,
    ses_region: str | None,
    sender: str | None,
    expire_days: int | None,
    runtime: str | None,
    memory: int | None,
    assignments: tuple[str, ...],
    as_parameters: bool,
) -> None:
    """Print the CloudFormation template (YAML) of the whole stack.

    Without options it is the template as packaged; each value given becomes its
    parameter's Default (only those lines change), or, with --parameters, a line of a
    parameters file.
    """
    from mailspool.aws.template import fill_defaults, parameters_file

    named = {
        "BucketName": bucket,
        "Prefix": None if prefix is None else _folder(prefix),
        "SesRegion": ses_region,
        "Sender": sender,
        "ExpireDays": expire_days,
        "Runtime": runtime,
        "MemorySize": memory,
    }
    values = _assignments(assignments)
    for name, value in named.items():
        if value is not None:
            if name in values:
                raise click.UsageError(f"{name} is given twice (an option and --set)")
            values[name] = str(value)
    with _click_errors():
        text = parameters_file(values) if as_parameters else fill_defaults(values)
    click.echo(text, nl=False)


def _folder(prefix: str) -> str:
    """``spool`` or ``/spool/`` as the template's Prefix wants it: ``spool/``."""
    stripped = prefix.strip("/")
    return f"{stripped}/" if stripped else ""


def _assignments(assignments: tuple[str, ...]) -> dict[str, str]:
    values: dict[str, str] = {}
    for assignment in assignments:
        name, equals, value = assignment.partition("=")
        if not equals or not name:
            raise click.UsageError(f"--set {assignment!r}: expected NAME=VALUE")
        if name in values:
            raise click.UsageError(f"--set {name} is given twice")
        values[name] = value
    return values


@aws.command()
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("function.zip"),
    show_default=True,
)
@click.option(
    "--python-version",
    default=default_runtime().removeprefix("python"),
    show_default=True,
    help="Lambda's Python (the template's Runtime default); another one needs the stack's "
    "Runtime to match: the command says how.",
)
@click.option(
    "--platform", default="manylinux2014_aarch64", show_default=True, help="'native': this machine."
)
@click.option(
    "--source",
    help="mailspool to package: a clone, a wheel or a requirement (default: the installed copy).",
)
@click.option("--boto3/--no-boto3", default=True, show_default=True, help="Bundle boto3.")
def package(output: Path, **options: Any) -> None:
    """Build the Lambda function zip with its dependencies."""
    from mailspool.aws.package import build_package

    with _click_errors():
        build_package(output, **options)  # the options are build_package's keywords
    runtime = f"python{options['python_version']}"
    click.echo(f"wrote {output} ({output.stat().st_size // 1024} KiB) for {runtime}")
    if runtime != default_runtime():
        click.echo(
            f"the stack must run it on {runtime}: mailspool aws template --runtime {runtime} "
            f"(or --parameters --runtime {runtime})"
        )


@aws.command()
@click.option("--bucket", required=True)
@click.option("--prefix", default="")
@click.option("--function-arn", help="Notify this Lambda function of new batches.")
@click.option("--queue-arn", help="Notify this SQS queue of new batches.")
@click.option("--expire-days", type=click.IntRange(min=1), default=14, show_default=True)
def setup(bucket: str, prefix: str, **options: Any) -> None:
    """Configure an existing bucket: encryption, public access block, lifecycle, events."""
    from mailspool.aws.bucket_setup import setup_bucket

    with _click_errors():
        setup_bucket(bucket, prefix=prefix, **options)  # the options are its keywords
    click.echo(f"configured s3://{bucket}/{prefix.strip('/')}")
