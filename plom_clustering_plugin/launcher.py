# SPDX-License-Identifier: AGPL-3.0-or-later
"""``plom-clustering-server``: Plom's ``plom-server`` launcher, with this plugin enabled.

``plom-server`` forces ``DJANGO_SETTINGS_MODULE=plom_server.settings``, which leaves the
plugin out.  This launcher runs the same start-up sequence with the plugin's settings
(or a deployment's own module derived from them) and also starts a Huey consumer for a
dedicated clustering queue when one is configured.
"""

from __future__ import annotations

import os
import subprocess
import time

PLUGIN_SETTINGS = "plom_clustering_plugin.settings"


def settings_module() -> str:
    """The settings module to run: a deployment's own, unless it is Plom's stock one."""
    current = os.environ.get("DJANGO_SETTINGS_MODULE", "")
    return current if current and current != "plom_server.settings" else PLUGIN_SETTINGS


def extra_queues() -> list[str]:
    """Queues besides Plom's two that need a consumer (a dedicated clustering queue)."""
    queue = os.environ.get("PLOM_CLUSTERING_QUEUE", "").strip()
    return [queue] if queue and queue not in ("chores", "parentchores") else []


def main() -> None:
    """Prepare the database if needed, then run Huey consumers and the web server."""
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module()
    # Imported late: Plom's modules read settings and the environment on import.
    from plom_server.Base.services import database_service
    from plom_server.scripts import launch_plom_server as plom

    args = plom.get_parser().parse_args()
    have_db = database_service.is_there_a_database()
    if not have_db or args.wipe:
        plom.run_django_manage_command("plom_clean_misc")
        plom.run_django_manage_command("plom_database --drop-database --yes")
        plom.run_django_manage_command("plom_database --create-database")
    if not have_db or args.wipe or args.init:
        plom.run_django_manage_command("migrate")
        plom.run_django_manage_command("plom_database --create-database-metadata")
    if args.init:
        return
    plom.run_django_manage_command("plom_create_groups")
    plom.run_django_manage_command("plom_make_first_users --no-admin-password")
    plom.run_django_manage_command("plom_build_scrap_extra_pdfs")
    plom.run_django_manage_command("plom_get_static_javascript")
    if not args.development:
        plom.run_django_manage_command("collectstatic --clear --no-input")
    processes: list[subprocess.Popen] = []
    try:
        processes += plom.launch_huey_processes()
        for queue in extra_queues():
            processes.append(
                plom.popen_django_manage_command(f"djangohuey --queue {queue}")
            )
        if args.development:
            server = plom.launch_django_dev_server_process(port=args.port)
        else:
            server = plom.launch_gunicorn_production_server_process(port=args.port)
        processes.append(server)
        time.sleep(0.25)
        for process in processes:
            if process.poll() is not None:
                raise RuntimeError(
                    f"A server process ({process.args}) stopped at once with exit code"
                    f" {process.returncode}."
                )
        if args.development:
            plom.wait_for_user_to_type_quit()
        else:
            server.wait()
    finally:
        for process in processes:
            process.terminate()


if __name__ == "__main__":
    main()
