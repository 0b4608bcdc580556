# placeholder until the accelerator lands

