"""Production serves static files through WhiteNoise's manifest storage, whose ``collectstatic`` (run by ``manage.py
serve`` at every start) fails on any reference a static file makes to a file that is not shipped — a vendored
library's ``sourceMappingURL`` comment, for one."""

from django.core.management import call_command
from django.test import override_settings

MANIFEST = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}


def test_collectstatic_with_the_production_storage(tmp_path):
    with override_settings(STORAGES=MANIFEST, STATIC_ROOT=str(tmp_path)):
        call_command("collectstatic", interactive=False, verbosity=0)
    assert (tmp_path / "staticfiles.json").exists()
    assert list((tmp_path / "workspace" / "vendor").glob("chart-4.4.7.umd.*.js"))
