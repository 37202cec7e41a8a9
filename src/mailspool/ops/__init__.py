"""Operations: status counts, failed e-mails, garbage collection and the demo."""
