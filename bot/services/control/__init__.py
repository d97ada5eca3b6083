"""The control pipeline: one front door (`ControlService.submit`) for every way a control comes
in. See `service` for the order of things and `ticket` for what goes in and out."""

from bot.services.control.panic import PanicResult
from bot.services.control.service import ControlService, PreparedControl
from bot.services.control.ticket import (
    ControlOrder,
    ControlOutcome,
    ControlReport,
    ControlTicket,
    Origin,
    Sender,
)

__all__ = [
    "ControlOrder",
    "ControlOutcome",
    "ControlReport",
    "ControlService",
    "ControlTicket",
    "Origin",
    "PanicResult",
    "PreparedControl",
    "Sender",
]
