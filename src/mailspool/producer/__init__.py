"""The request side: send_mail, the classifier, the per-request scope and the hand-off to the store."""
