"""Expected failures of configuration templates, each with a code clients branch on."""

from __future__ import annotations

from schema.errors import ChargeNetError


class TemplateNameTaken(ChargeNetError):
    """Template names are unique per organisation (without regard to case)."""

    code = "TEMPLATE_NAME_TAKEN"
