"""The city's category catalogue (a YAML file), shared by intake (Open311 services) and the classifier."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class AttributeValue(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    key: str
    name: str


class Attribute(BaseModel):
    """An extra question asked when a citizen reports in this category (an Open311 service attribute)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    code: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    description: str
    datatype: Literal["string", "number", "datetime", "text", "singlevaluelist", "multivaluelist"] = "string"
    required: bool = False
    datatype_description: str = ""
    values: list[AttributeValue] = []


class Category(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    description: str = ""
    aliases: list[str] = []
    keywords: list[str] = []
    group: str | None = None
    attributes: list[Attribute] = []


class Taxonomy(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = 1
    categories: list[Category] = Field(min_length=1)

    def codes(self) -> list[str]:
        return [c.code for c in self.categories]

    def get(self, code: str) -> Category | None:
        return next((c for c in self.categories if c.code == code), None)

    def resolve(self, label: str) -> str | None:
        """The category code for a code, name or alias (e.g. a label in a city's historical data)."""
        for c in self.categories:
            if label == c.code or label == c.name or label in c.aliases:
                return c.code
        return None


class ConfigError(ValueError):
    """A configuration file is invalid; the message names the file and the problem."""


def load_taxonomy(path: Path) -> Taxonomy:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        taxonomy = Taxonomy.model_validate(data)
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except ValidationError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    codes = taxonomy.codes()
    if len(set(codes)) != len(codes):
        raise ConfigError(f"{path}: duplicate category codes")
    return taxonomy
