"""The DICOMweb credential's rules (scope, a share's one study) and CORS, without the cloud:
what the entry point applies to every request (the integration tests drive them through the
function: ``tests/integration/test_api_keys.py``, ``test_dicomweb_access.py``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pacs.errors import AuthError, Forbidden, TransientError
from pacs.keys import api_keys, cors
from pacs.keys.access import Credential
from pacs.settings import Settings

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def test_a_read_credential_cannot_write_and_a_read_write_one_can():
    read = Credential("u1", api_keys.READ, "api_key", "k" * 20)
    with pytest.raises(Forbidden) as err:
        read.require_write("DELETE")
    assert err.value.code == "insufficient_scope" and err.value.http_status == 403
    Credential("u1", api_keys.READ_WRITE, "api_key", "k" * 20).require_write("STOW-RS")
    Credential("u1", api_keys.READ_WRITE, "id_token").require_write("STOW-RS")


def test_a_share_reaches_its_one_study_only():
    share = Credential("u1", api_keys.READ, "share", "s" * 20, "key", "1.2.3")
    assert share.allows_study("1.2.3") and not share.allows_study("1.2.4")
    assert share.study_search([("PatientName", "A*")]) == [("PatientName", "A*"),
                                                            ("StudyInstanceUID", "1.2.3")]
    assert share.study_search([("StudyInstanceUID", "1.2.4\\1.2.3")]) == [
        ("StudyInstanceUID", "1.2.3")]
    assert share.study_search([("StudyInstanceUID", "1.2.4")]) is None
    assert share.study_search([("0020000D", "1.2.4")]) is None
    owner = Credential("u1", api_keys.READ_WRITE, "id_token")
    assert owner.allows_study("1.2.4")
    assert owner.study_search([("StudyInstanceUID", "1.2.4")]) == [("StudyInstanceUID", "1.2.4")]


def _doc(**over):
    return {"owner": "u1", "scope": "read", "revoked": False,
            "expires_at": NOW + timedelta(days=1), **over}


def test_key_checks_in_order_revoked_expired_suspended():
    key = b"k" * 32
    key_id, secret, token = api_keys.new_key()
    assert api_keys.KEY.match(token) and api_keys.is_api_key(token)
    doc = _doc(key_hash=api_keys.key_hash(key, key_id, secret))
    assert api_keys.check_key(key_id, doc, secret, key, NOW, False) is doc
    cases = [({"revoked": True}, False, "key_revoked"),
             ({"expires_at": NOW}, False, "key_expired"),
             ({}, True, "key_suspended")]
    for over, restricted, code in cases:
        with pytest.raises((AuthError, Forbidden)) as err:
            api_keys.check_key(key_id, {**doc, **over}, secret, key, NOW, restricted)
        assert err.value.code == code
    for wrong in (None, {**doc, "key_hash": "0" * 64}):
        with pytest.raises(AuthError) as err:
            api_keys.check_key(key_id, wrong, secret, key, NOW, False)
        assert err.value.code == "invalid_key"
    other_deployment = api_keys.key_hash(b"x" * 32, key_id, secret)
    assert other_deployment != doc["key_hash"]


def test_no_hash_key_no_keys():
    with pytest.raises(TransientError) as err:
        api_keys.key_hash(b"", "0" * 20, "s" * 43)
    assert err.value.code == "hash_key_missing"


def _settings(**env):
    return Settings.from_env({"GOOGLE_CLOUD_PROJECT": "demo-x", "PACS_POLICY_VERSION": "1",
                              **env})


def test_cors_answers_the_hosting_origins_only():
    settings = _settings(PACS_VIEWER_ORIGIN="http://127.0.0.1:5000")
    assert settings.hosting_origins == ("http://127.0.0.1:5000", "https://demo-x.web.app",
                                        "https://demo-x.firebaseapp.com")
    ask = {"Origin": "https://demo-x.web.app", "Access-Control-Request-Method": "GET",
           "Access-Control-Request-Headers": "authorization"}
    body, status, headers = cors.preflight(ask, settings)
    assert status == 204 and headers["Access-Control-Allow-Origin"] == "https://demo-x.web.app"
    assert "Authorization" in headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in headers
    for origin in ("https://evil.example", "https://demo-x.web.app.evil.example", "null", ""):
        _, status, headers = cors.preflight({**ask, "Origin": origin}, settings)
        assert status == 204 and not [h for h in headers if h.startswith("Access-Control")]
        assert cors.add_headers(("{}", 200, {}), {"Origin": origin}, settings) == ("{}", 200, {})
    _, _, own = cors.add_headers(("{}", 200, {"X": "1"}), {"Origin": "http://127.0.0.1:5000"},
                                 settings)
    assert own["Access-Control-Allow-Origin"] == "http://127.0.0.1:5000" and own["X"] == "1"


def test_hosting_origins_can_be_listed():
    settings = _settings(PACS_HOSTING_ORIGINS="https://pacs.example/, https://b.example")
    assert settings.hosting_origins == ("https://pacs.example", "https://b.example")



def test_the_deploy_step_gives_the_functions_every_hosting_origin():
    import json

    from deploy import plan
    from deploy.requirements import ROOT

    table = json.loads((ROOT / "infra" / "functions.json").read_text())["functions"]
    spec = next(s for s in plan.function_specs(table, "demo-x") if s.name == "dicomweb")
    origins = ["https://demo-x.web.app", "https://demo-x.firebaseapp.com", "https://pacs.example"]
    env = plan.env_vars(spec, "demo-x", "europe-west1", origins)
    assert "," not in env["PACS_HOSTING_ORIGINS"]  # gcloud --set-env-vars splits on commas
    assert _settings(**env).hosting_origins == tuple(origins)
