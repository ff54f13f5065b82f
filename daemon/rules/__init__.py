"""The rule language (models) and loading of rule directories."""

from daemon.rules.model import Action, Circadian, Condition, Curve, Input, Rule, RuleFile, Schedule, Steps

__all__ = ["Action", "Circadian", "Condition", "Curve", "Input", "Rule", "RuleFile", "Schedule", "Steps"]
