"""One router per resource; route functions only translate HTTP to decisions/ and back."""
