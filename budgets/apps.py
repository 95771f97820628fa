from django.apps import AppConfig


class BudgetsConfig(AppConfig):
    name = "budgets"
    verbose_name = "Budgets"

    def ready(self) -> None:
        from budgets.usage import record_model_call
        from routing.signals import model_called

        # Routing cannot import budgets (budgets sits above it): it reports its calls' tokens by this signal.
        model_called.connect(record_model_call, dispatch_uid="budgets.record_model_call")
