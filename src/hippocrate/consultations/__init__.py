"""Consultations: requests, the queue, care relationships, messages, attachments, reports."""
