"""The domain of sessionpack: rules, availability, booking, money, policies and integrations."""
