"""Versioned prompt templates: ``prompts/<name>.yaml``, rendered in a Jinja2 sandbox."""

from keel.prompts.template import PromptTemplate, load_prompt

__all__ = ["PromptTemplate", "load_prompt"]
