from __future__ import annotations

from django import forms

from trollama.models import Maintenance


class MaintenanceForm(forms.Form):
    mode = forms.ChoiceField(choices=Maintenance.Mode.choices, widget=forms.RadioSelect)
    message = forms.CharField(
        max_length=500,
        required=False,
        help_text="Shown to users while maintenance is on. Empty: a standard message for the mode.",
        widget=forms.TextInput(attrs={"size": 60}),
    )
