"""Currency precision (ISO 4217 minor units), shared by the accounting layer and the X3 clients.

The accounting layer rounds each amount to it; the X3 clients write amounts with exactly that many decimals
(``34.96`` for USD, ``1500`` for JPY, ``1.235`` for KWD), whatever scale the database column stores them with.
"""

from __future__ import annotations

from decimal import Decimal

from .errors import PermanentError

# ISO 4217 minor units that are not 2. Anything else has two decimals.
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
}


def minor_unit(currency: str) -> int:
    return MINOR_UNITS.get(currency.upper(), 2)


def amount_at_precision(value: Decimal, currency: str) -> Decimal:
    """``value`` with exactly the currency's number of decimals: ``69.8400`` USD -> ``69.84``, ``1500.0000`` JPY ->
    ``1500``, ``12.5`` USD -> ``12.50``. Negative amounts (storno entries) stay negative; ``-0`` becomes ``0``.

    Never rounds: an amount with significant digits beyond the currency's precision is a bug upstream (the
    accounting layer rounds), so it raises a :class:`PermanentError` instead of sending a different amount.
    """
    if not value.is_finite():
        raise PermanentError(f"amount {value} is not a finite number")
    step = Decimal(1).scaleb(-minor_unit(currency))
    exact = value.quantize(step)
    if exact != value:
        raise PermanentError(
            f"amount {value} has more decimals than {currency.upper()} allows ({minor_unit(currency)}): "
            "it must be rounded before it is sent"
        )
    return abs(exact) if exact.is_zero() else exact
