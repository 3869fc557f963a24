"""Service errors: stable codes that survive the trip through Celery."""
def test_service_errors_survive_pickling():
    """Celery pickles the exceptions it reports; codes and retry hints must come back intact."""
    import pickle

    from services.errors import OperationFailed, TransientError

    back = pickle.loads(pickle.dumps(TransientError("zoom_rate_limited", "slow down", retry_after=7.5, step="x")))
    assert (type(back), back.code, back.message, back.retry_after, back.details) == \
        (TransientError, "zoom_rate_limited", "slow down", 7.5, {"step": "x"})
    refused = pickle.loads(pickle.dumps(OperationFailed("slot_unavailable", "taken")))
    assert refused.exit_code == 1 and str(refused) == "taken"
