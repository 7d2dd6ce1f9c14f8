"""The slice of configuration the planner reads (so the planner never sees secrets or paths)."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config


@dataclass(frozen=True)
class PlanSettings:
    scope: str = "assigned"  # assigned | all
    group_members: str = "direct"  # direct | transitive
    skip_out_of_scope_deactivations: bool = False
    email: str = "userPrincipalName"  # userPrincipalName | originalUserPrincipalName | mail
    admin_group_aliases: tuple[str, ...] = ("Split_Administrators",)
    max_group_name_length: int = 24
    deactivation_threshold: int = 500

    @classmethod
    def from_config(cls, config: Config) -> PlanSettings:
        return cls(
            scope=config.sync.scope,
            group_members=config.sync.group_members,
            skip_out_of_scope_deactivations=config.sync.skip_out_of_scope_deactivations,
            email=config.mapping.email,
            admin_group_aliases=config.mapping.admin_group_aliases,
            max_group_name_length=config.mapping.max_group_name_length,
            deactivation_threshold=config.sync.deactivation_threshold,
        )
