# SPDX-License-Identifier: AGPL-3.0-or-later
"""Training code for the plugin's models (needs the ``train`` extra: torch).

Only modules named ``*_train``, ``*_model`` and ``*_export`` import torch; nothing here is
imported at run time.
"""
