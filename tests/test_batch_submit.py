"""Submitting to a just-started cluster: a dropped connection is retried under one submission id, so a job whose
answer was lost is never started twice."""

from __future__ import annotations

import pytest
import requests

from model_utils.batch import submit
from model_utils.batch.submit import ClusterError, ClusterJob


class _Dashboard:
    """Ray's job client as a busy new head answers it: each call takes the next of ``answers``."""

    def __init__(self, *answers) -> None:
        self.answers = list(answers)
        self.ids: list[str] = []

    def submit_job(self, *, entrypoint: str, submission_id: str, runtime_env: dict, metadata: dict) -> str:
        self.ids.append(submission_id)
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer or submission_id


def _job(dashboard: _Dashboard) -> ClusterJob:
    job = ClusterJob.__new__(ClusterJob)
    job.client, job.job_id = dashboard, None
    return job


@pytest.fixture(autouse=True)
def _no_waiting(monkeypatch):
    monkeypatch.setattr(submit.time, "sleep", lambda _s: None)


def test_a_dropped_connection_is_retried_with_the_same_submission_id():
    lost = requests.exceptions.ConnectionError("Remote end closed connection without response")
    dashboard = _Dashboard(lost, RuntimeError("No available agent to submit job"), None)
    job_id = _job(dashboard).submit(["geolocate", "--photos", "p"])
    assert len(dashboard.ids) == 3 and len(set(dashboard.ids)) == 1 and job_id == dashboard.ids[0]


def test_a_job_that_got_through_before_its_answer_was_lost_is_not_started_again():
    lost = requests.exceptions.ConnectionError("Remote end closed connection without response")
    exists = RuntimeError("Request failed with status code 400: Job with submission_id x already exists.")
    dashboard = _Dashboard(lost, exists)
    job = _job(dashboard)
    assert job.submit(["geolocate"]) == dashboard.ids[0] == job.job_id and len(dashboard.ids) == 2


def test_a_refusal_is_said_at_once():
    dashboard = _Dashboard(RuntimeError("Request failed with status code 400: runtime_env is invalid"))
    with pytest.raises(ClusterError, match="The cluster refused the job: .*runtime_env is invalid"):
        _job(dashboard).submit(["geolocate"])
    assert len(dashboard.ids) == 1
