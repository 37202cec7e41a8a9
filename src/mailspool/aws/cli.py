"""``mailspool aws``: the CloudFormation template, the function zip, bucket set-up."""

from __future__ import annotations

from pathlib import Path

import click

from mailspool.errors import MailspoolError

__all__ = ["aws"]


@click.group()
def aws() -> None:
    """Deploy mailspool on AWS: S3 + SQS + Lambda + SES (see docs/aws.md)."""


@aws.command()
@click.option("--bucket", help="Default of the BucketName parameter.")
@click.option(
    "--prefix", default="", help="Store prefix inside the bucket (fixed in the template)."
)
@click.option("--region", "ses_region", default="", help="SES region (default: the stack's).")
@click.option("--sender", help="Default From address (MAILSPOOL_SENDER).")
@click.option("--expire-days", type=click.IntRange(min=1), default=14, show_default=True)
@click.option("--runtime", default="python3.11", show_default=True, help="Lambda runtime.")
def template(
    bucket: str | None,
    prefix: str,
    ses_region: str,
    sender: str | None,
    expire_days: int,
    runtime: str,
) -> None:
    """Print the CloudFormation template (YAML) of the whole stack."""
    from mailspool.aws.template import render_template

    click.echo(
        render_template(
            bucket=bucket,
            prefix=prefix,
            sender=sender,
            ses_region=ses_region,
            expire_days=expire_days,
            runtime=runtime,
        ),
        nl=False,
    )


@aws.command()
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("function.zip"),
    show_default=True,
)
@click.option("--python-version", default="3.11", show_default=True)
@click.option(
    "--platform", default="manylinux2014_x86_64", show_default=True, help="'native': this machine."
)
@click.option("--source", help="mailspool to package: a path or requirement (default: this one).")
@click.option(
    "--boto3/--no-boto3", "with_boto3", default=True, show_default=True, help="Bundle boto3."
)
def package(
    output: Path, python_version: str, platform: str, source: str | None, with_boto3: bool
) -> None:
    """Build the Lambda function zip with its dependencies."""
    from mailspool.aws.package import build_package

    try:
        build_package(
            output,
            python_version=python_version,
            platform=platform,
            source=source,
            boto3=with_boto3,
        )
    except MailspoolError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"wrote {output} ({output.stat().st_size // 1024} KiB)")


@aws.command()
@click.option("--bucket", required=True)
@click.option("--prefix", default="")
@click.option("--function-arn", help="Notify this Lambda function of new batches.")
@click.option("--queue-arn", help="Notify this SQS queue of new batches.")
@click.option("--expire-days", type=click.IntRange(min=1), default=14, show_default=True)
def setup(
    bucket: str, prefix: str, function_arn: str | None, queue_arn: str | None, expire_days: int
) -> None:
    """Configure an existing bucket: encryption, public access block, lifecycle, events."""
    from mailspool.aws.bucket_setup import setup_bucket

    try:
        setup_bucket(
            bucket,
            prefix=prefix,
            function_arn=function_arn,
            queue_arn=queue_arn,
            expire_days=expire_days,
        )
    except MailspoolError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"configured s3://{bucket}/{prefix.strip('/')}")
