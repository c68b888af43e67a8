"""The decision policy: candidates, rules, scoring and arbitration, independent of HTTP."""
