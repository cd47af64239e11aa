"""A Pydantic model that features in the tests declare as their output schema by import path."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator


class Booking(BaseModel):
    """A hotel booking: the JSON schema has the bounds; the validator adds a rule it cannot express."""

    city: str
    nights: int = Field(ge=1, le=30)
    guests: list[str] = Field(default_factory=list)

    @field_validator("guests")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("guests must be distinct")
        return v


Nope = 42
