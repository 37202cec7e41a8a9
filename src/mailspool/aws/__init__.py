"""mailspool on AWS: the Lambda handler, the sweeper, the template and deployment tools.

``mailspool.aws.handler`` (**contract**) is the function's entry point and
``mailspool.aws.sweeper_handler`` the sweeper's. boto3 (``pip install 'mailspool[aws]'``)
is imported only by the modules that need it.
"""

from mailspool.aws.lambda_handler import handler
from mailspool.aws.sweeper import sweeper_handler

__all__ = ["handler", "sweeper_handler"]
