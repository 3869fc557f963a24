"""The booking workflow: request validation, the hold, the saga steps and their compensations."""
