"""Configure an existing bucket for mailspool: ``mailspool aws setup``.

Sets, through boto3: default encryption (SSE-S3), the public access block, lifecycle
rules that expire finished batches (``done/``, ``ledger/``) after the expire days, failed
e-mails and feedback events after ``MAILSPOOL_RETENTION``'s defaults (the folders of
``mailspool.retention.PREFIXES``) and stale ``.leases/``, never unsent mail,
and the event notification for ``queue/*.json`` to a Lambda function or an SQS queue.
The bucket's other lifecycle rules and notifications are kept; mailspool's own (by id)
are replaced, so running it twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from mailspool._backends import boto3_client
from mailspool.errors import ConfigurationError
from mailspool.retention import DEFAULT_RETENTION, PREFIXES, RetentionState
from mailspool.spool import layout

__all__ = ["aws_errors", "setup_bucket"]

_RULE_PREFIX = "mailspool-"

# The IAM action each call needs, for "access denied" (botocore names the operation).
_ACTIONS = {
    "PutBucketEncryption": "s3:PutEncryptionConfiguration",
    "PutPublicAccessBlock": "s3:PutBucketPublicAccessBlock",
    "GetBucketLifecycleConfiguration": "s3:GetLifecycleConfiguration",
    "PutBucketLifecycleConfiguration": "s3:PutLifecycleConfiguration",
    "GetBucketNotificationConfiguration": "s3:GetBucketNotification",
    "PutBucketNotificationConfiguration": "s3:PutBucketNotification",
}


def setup_bucket(
    bucket: str,
    *,
    prefix: str = "",
    function_arn: str | None = None,
    queue_arn: str | None = None,
    expire_days: int = 14,
    client: Any = None,
) -> None:
    """Apply every setting above to ``bucket`` (see the module docstring)."""
    if function_arn and queue_arn:
        raise ConfigurationError("give --function-arn or --queue-arn, not both")
    if expire_days < 1:
        raise ConfigurationError("expire days must be at least 1")
    with aws_errors(bucket):
        s3 = client or boto3_client("s3", user="mailspool aws setup")
        _apply(s3, bucket, prefix, function_arn, queue_arn, expire_days)


@contextmanager
def aws_errors(bucket: str) -> Iterator[None]:
    """AWS's errors as one line saying what to create or allow (no traceback)."""
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        yield
    except ClientError as err:
        raise ConfigurationError(_client_error(bucket, err)) from None
    except NoCredentialsError:
        raise ConfigurationError(
            "no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY "
            "(or run 'aws configure')"
        ) from None
    except BotoCoreError as err:
        raise ConfigurationError(f"cannot reach S3 for bucket {bucket}: {err}") from None


def _client_error(bucket: str, err: Any) -> str:
    error = err.response.get("Error", {})
    code, operation = str(error.get("Code", "")), str(err.operation_name)
    if code == "NoSuchBucket":
        return (
            f"bucket {bucket} does not exist: create it (aws s3 mb s3://{bucket}), or let "
            "the stack create it (mailspool aws template)"
        )
    if code in ("AccessDenied", "AllAccessDisabled", "403"):
        action = _ACTIONS.get(operation, f"the S3 action of {operation}")
        return (
            f"access denied to {operation} on bucket {bucket}: allow {action} on "
            f"arn:aws:s3:::{bucket} to this identity"
        )
    return f"{operation} on bucket {bucket} failed: {code}: {error.get('Message', '')}"


def _apply(
    s3: Any,
    bucket: str,
    prefix: str,
    function_arn: str | None,
    queue_arn: str | None,
    expire_days: int,
) -> None:
    root = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    s3.put_public_access_block(
        Bucket=bucket,
        PublicAccessBlockConfiguration={
            "BlockPublicAcls": True,
            "IgnorePublicAcls": True,
            "BlockPublicPolicy": True,
            "RestrictPublicBuckets": True,
        },
    )
    _lifecycle(s3, bucket, root, expire_days)
    if function_arn or queue_arn:
        _notification(s3, bucket, root, function_arn, queue_arn)


def _lifecycle(s3: Any, bucket: str, root: str, days: int) -> None:
    try:
        rules = s3.get_bucket_lifecycle_configuration(Bucket=bucket).get("Rules", [])
    except s3.exceptions.ClientError as err:
        if err.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    rules = [r for r in rules if not str(r.get("ID", "")).startswith(_RULE_PREFIX)]
    for name, folder, expiry in (*_retention_rules(days), ("leases", ".leases/", 1)):
        rules.append(
            {
                "ID": f"{_RULE_PREFIX}{root.strip('/') or 'root'}-{name}",
                "Status": "Enabled",
                "Filter": {"Prefix": root + folder},
                "Expiration": {"Days": expiry},
                "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
            }
        )
    s3.put_bucket_lifecycle_configuration(Bucket=bucket, LifecycleConfiguration={"Rules": rules})


def _retention_rules(days: int) -> list[tuple[str, str, int]]:
    """(name, folder, days) per folder that expires: finished after ``days``, failed and
    event records after ``MAILSPOOL_RETENTION``'s defaults (as the template's rules)."""
    rules = []
    for state, folders in PREFIXES.items():
        age = DEFAULT_RETENTION.of(state) if state is not RetentionState.FINISHED else None
        expiry = days if age is None else int(age // 86400)
        rules += [(folder.strip("/"), folder, expiry) for folder in folders]
    return rules


def _notification(
    s3: Any, bucket: str, root: str, function_arn: str | None, queue_arn: str | None
) -> None:
    current = s3.get_bucket_notification_configuration(Bucket=bucket)
    current.pop("ResponseMetadata", None)
    rule_id = f"{_RULE_PREFIX}{root.strip('/') or 'root'}-queue"
    entry: dict[str, Any] = {
        "Id": rule_id,
        "Events": ["s3:ObjectCreated:*"],
        "Filter": {
            "Key": {
                "FilterRules": [
                    {"Name": "prefix", "Value": root + layout.QUEUE},
                    {"Name": "suffix", "Value": ".json"},
                ]
            }
        },
    }
    kind, arn_field = (
        ("LambdaFunctionConfigurations", "LambdaFunctionArn")
        if function_arn
        else ("QueueConfigurations", "QueueArn")
    )
    entry[arn_field] = function_arn or queue_arn
    for name in ("LambdaFunctionConfigurations", "QueueConfigurations"):
        current[name] = [c for c in current.get(name, []) if c.get("Id") != rule_id]
    current[kind].append(entry)
    s3.put_bucket_notification_configuration(
        Bucket=bucket, NotificationConfiguration={k: v for k, v in current.items() if v}
    )
